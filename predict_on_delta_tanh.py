"""Stage 3: predict the delta peak + tanh continuum mock with every replica of every ensemble,
every σ (method §8-10).

    python predict_on_delta_tanh.py [--preset demo] [--root DIR] [--device cpu]

Draws N_boot bootstrap samples of the mock's exact correlator with the noise of method §4 (seeded),
predicts them with every trained replica found under trained_models_sigma*/ and writes
mock_predictions_sigma{100σ}/delta_tanh_predictions_{ensemble}_sigma{σ}.hdf5.  Missing
checkpoints are listed by name; whatever exists is predicted.  Exit status: 0 (something was
predicted), 1 (no checkpoint at all), 2 (bad input).
"""
import sys

from prediction import mock_main


def main(argv=None) -> int:
    return mock_main("delta_tanh", __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())

"""Stage 3: predict the delta peak + tanh continuum mock with every replica of every ensemble, for every σ (SPEC §8-10).

    python predict_on_delta_tanh.py [--preset demo] [--root DIR] [--device cpu]

Draws N_boot bootstrap samples of the mock's exact correlator with the noise of SPEC §4 (seeded),
predicts them with every trained replica found under trained_models_sigma*/ and writes
mock_predictions_sigma{100σ}/delta_tanh_predictions_{ensemble}_sigma{σ}.hdf5.  Missing
checkpoints are listed by name; whatever exists is predicted.  Exit status: 0 (something was
predicted), 1 (no checkpoint at all), 2 (bad input).
"""
import argparse
import sys

from config import add_common_args, config_from_args
from prediction import mock_inputs, predict_all, print_report
from training import configure_threads


def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        configure_threads()
        report = predict_all(cfg, mock_inputs(cfg, "delta_tanh"), args.device)
    except ValueError as err:          # ConfigError and InputError: one clear message
        print(f"error: {err}", file=sys.stderr)
        return 2
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())

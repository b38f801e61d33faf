"""Stage 4 for your own correlator: the error budget, tables and plots (method §8-10).

    python analyze_user_data.py --name mydata [--preset demo] [--root DIR]

Reads mock_predictions_sigma{100σ}/{name}_predictions_{ensemble}_sigma{σ}.hdf5 (written by
predict_on_user_data.py) and writes, per σ, results/{name}_sigma{σ}_budget.csv and .hdf5 and the
plots results/{name}_sigma{σ}_{result,ensembles,budget}.png.  Jackknife inputs get jackknife
errors (the files say which kind of samples they hold).  There is no truth, hence no pulls.
"""
import sys

import analysis


def main(argv=None) -> int:
    return analysis.main(__doc__.split("\n")[0], None, argv)


if __name__ == "__main__":
    sys.exit(main())

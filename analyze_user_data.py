"""Stage 4 for your own correlators: the error budget, tables and plots (method §8-10).

    python analyze_user_data.py FILE [FILE ...] [--name NAME] [--tag TAG] [--no-plots] [--jobs N]
                                [--preset demo] [--root DIR]
    python analyze_user_data.py --name mydata [--preset demo] [--root DIR]

The files given to predict_on_user_data.py name their correlators as it named them (or --name
names one).  Reads mock_predictions_sigma{100σ}/{name}_predictions_{ensemble}_sigma{σ}.hdf5 and
writes, per σ, results/{name}_sigma{σ}_budget.csv, .json and .hdf5, the gvar and pyerrors files and
the plots results/{name}_sigma{σ}_{result,ensembles,budget,correlation}.png (not with --no-plots).
Several correlators are analysed --jobs at once (default: the usable cores); one that fails is
named and the others go on (exit status 2 or 1).  Jackknife inputs get jackknife
errors (the files say which kind of samples they hold).  There is no truth, hence no pulls.
"""
import sys

import analysis


def main(argv=None) -> int:
    return analysis.main(__doc__.split("\n")[0], None, argv)


if __name__ == "__main__":
    sys.exit(main())

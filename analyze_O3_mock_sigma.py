"""Stage 4: the error budget, tables, plots and summary of the O(3) mock (method §8-10).

    python analyze_O3_mock_sigma.py [--preset demo] [--root DIR]

Reads mock_predictions_sigma{100σ}/O3_predictions_{ensemble}_sigma{σ}.hdf5 and writes, per σ,
results/O3_sigma{σ}_budget.csv and .hdf5 (central, stat, rep, sys_b, sys_rho, sys_n, total,
truth) and the plots results/O3_sigma{σ}_{result,ensembles,budget,pulls}.png; prints the mean
|pull| and the coverage per σ.  A missing ensemble makes its component NaN, with a warning.
"""
import sys

import analysis


def main(argv=None) -> int:
    return analysis.main(__doc__.split("\n")[0], "O3", argv)


if __name__ == "__main__":
    sys.exit(main())

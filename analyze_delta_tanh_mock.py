"""Stage 4: the error budget, tables, plots and summary of the delta + tanh mock (method §8-10).

    python analyze_delta_tanh_mock.py [--preset demo] [--root DIR]

Reads mock_predictions_sigma{100σ}/delta_tanh_predictions_{ensemble}_sigma{σ}.hdf5 and writes, per σ,
results/delta_tanh_sigma{σ}_budget.csv and .hdf5 (central, stat, rep, sys_b, sys_rho, sys_n, total,
truth) and the plots results/delta_tanh_sigma{σ}_{result,ensembles,budget,pulls}.png; prints the mean
|pull| and the coverage per σ.  A missing ensemble makes its component NaN, with a warning.
"""
import sys

import analysis


def main(argv=None) -> int:
    return analysis.main(__doc__.split("\n")[0], "delta_tanh", argv)


if __name__ == "__main__":
    sys.exit(main())

"""The interval networks' outputs, without torch: the quantile levels, the layout of the 3·N_E
outputs and the networks' files, for whoever reads them (the prediction files, the calibration,
the analysis) as well as for the networks themselves (interval_networks.py).

    outputs[..., 0:N_E] = q_lo,   outputs[..., N_E:2N_E] = q_50,   outputs[..., 2N_E:3N_E] = q_hi

at the levels τ = Φ(−1), 1/2, Φ(1) (QUANTILE_LEVELS; Φ the standard normal CDF, so [q_lo, q_hi]
is a 68.27 % interval).
"""
from __future__ import annotations

import math

from roles import INTERVAL_RUN


def normal_cdf(x: float) -> float:
    """Φ(x) = (1 + erf(x/√2))/2."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


QUANTILE_LEVELS = (normal_cdf(-1.0), 0.5, normal_cdf(1.0))      # (q_lo, q_50, q_hi)
LAYOUT = "q_lo[N_E], q_50[N_E], q_hi[N_E]"


def split_quantiles(outputs):
    """(q_lo, q_50, q_hi), each [..., N_E], of an interval network's outputs [..., 3·N_E] (numpy
    or torch): the one place that knows the layout."""
    n_energies = outputs.shape[-1] // len(QUANTILE_LEVELS)
    if outputs.shape[-1] != len(QUANTILE_LEVELS) * n_energies:
        raise ValueError(f"outputs of width {outputs.shape[-1]}: expected 3·N_E ({LAYOUT})")
    return tuple(outputs[..., j * n_energies:(j + 1) * n_energies] for j in range(len(QUANTILE_LEVELS)))


def interval_checkpoints(cfg, sigma_gev: float) -> list:
    """The paths of the interval networks of σ, one per replica of Nmax (missing ones included)."""
    return [cfg.checkpoint(sigma_gev, INTERVAL_RUN, r) for r in range(cfg["n_replicas"])]

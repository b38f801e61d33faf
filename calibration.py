"""The calibrated error: split-conformal factors over a calibration set, and the calibrated result.

Why.  A network trained with the L1 loss on a prior estimates the posterior median of ρ_σ(E)
given the data.  The posterior has a width -- what the noisy time slices do not determine -- that
no term of the paper's σ_tot contains and that does not shrink as the audience grows, while
σ_stat, σ_rep and the Σ_X do.  The interval networks estimate that width: quantiles q_lo, q_50,
q_hi at Φ(−1), 0.5, Φ(1), whose half-distance w = (q_hi − q_lo)/2 is one standard deviation of a
Gaussian posterior.  Split-conformal calibration then makes the width honest on average over a
calibration space of densities the networks never saw.

Calibration (one σ).  N_cal densities of the calibration space, each measured once and given
N_boot,cal bootstrap samples, are predicted exactly as user data are.  For a centre c and a width
w, the score of item i at energy k is

    e_ik = |c_ik − y_ik| / w_ik,

and the conformal factor Q_k is the ⌈(N_cal + 1)·0.6827⌉-th smallest of e_1k..e_Nk (+inf if that
rank exceeds N_cal).  For a new item exchangeable with the calibration items, the interval c ± Q·w
then covers its truth with probability at least 68.27 % at each energy (and at most 68.27 % +
1/(N_cal + 1)): the guarantee is marginal -- per energy, on average over the calibration space --
not per density, and none outside that space.  The same rule with w = σ_tot gives S_k, the factor
of the baseline ``total_scaled`` = S·σ_tot that needs no new network.

The calibrated result, for two centres, both computed and reported:
    ``paper``:  c = ρ̄_Nmax,   σ_cal² = (Q·w)² + Σ_b² + Σ_ρ² + Σ_n² (+ Σ_prior²)
    ``median``: c = mean over samples and replicas of q_50,   σ_cal = Q·w
σ_stat and σ_rep are not added: Q is calibrated on the centre's actual deviation, which already
contains both.  ``post`` = Q·w is the calibrated posterior width.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

COVERAGE = float(erf(1 / math.sqrt(2)))          # 0.6827: one standard deviation of a Gaussian
CENTRES = ("paper", "median")


def conformal_rank(n_cal: int, coverage: float = COVERAGE) -> int:
    """⌈(N_cal + 1)·coverage⌉: the rank (1-based) of the conformal quantile among N_cal scores."""
    return math.ceil((n_cal + 1) * coverage)


def conformal_factor(scores: np.ndarray, coverage: float = COVERAGE) -> np.ndarray:
    """Q_k: the conformal_rank-th smallest score at each energy, from scores [N_cal, N_E]
    (+inf where the rank exceeds N_cal: too few items for that coverage)."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("a calibration score is NaN (a width of 0 or NaN, or a NaN prediction)")
    rank = conformal_rank(scores.shape[0], coverage)
    if rank > scores.shape[0]:
        return np.full(scores.shape[1], np.inf)
    return np.sort(scores, axis=0)[rank - 1]


def scores(centre: np.ndarray, truth: np.ndarray, width: np.ndarray) -> np.ndarray:
    """e_ik = |c_ik − y_ik| / w_ik."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.asarray(centre) - np.asarray(truth)) / np.asarray(width)


def half_width(q_lo: np.ndarray, q_hi: np.ndarray) -> np.ndarray:
    """w = (q_hi − q_lo)/2, the interval networks' one-standard-deviation width."""
    return 0.5 * (np.asarray(q_hi) - np.asarray(q_lo))


def calibrated_total(post: np.ndarray, systematics: list) -> np.ndarray:
    """sqrt(post² + Σ of the systematics squared): the ``paper`` centre's error (no systematics:
    the ``median`` centre's, = post)."""
    return np.sqrt(np.asarray(post) ** 2 + sum(np.asarray(s) ** 2 for s in systematics))

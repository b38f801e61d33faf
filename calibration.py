"""The calibrated error: split-conformal factors over a calibration set, and the calibrated result.

Why.  A network trained with the L1 loss on a prior estimates the posterior median of ρ_σ(E)
given the data.  The posterior has a width -- what the noisy time slices do not determine -- that
no term of the paper's σ_tot contains and that does not shrink as the audience grows, while
σ_stat, σ_rep and the Σ_X do.  The interval networks estimate that width: quantiles q_lo, q_50,
q_hi at Φ(−1), 0.5, Φ(1), whose half-distance w = |q_hi − q_lo|/2 is one standard deviation of a
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

from covariance import calibrated_covariance, score_correlation, systematic_covariance
from roles import CALIBRATED_CENTRES as CENTRES
from roles import PRIOR_ENSEMBLE, PRIOR_SYSTEMATIC, SYSTEMATICS

COVERAGE = float(erf(1 / math.sqrt(2)))          # 0.6827: one standard deviation of a Gaussian
# what each result promises, as the outputs state it
GUARANTEES = {"paper": "no coverage stated: it measures the audience's disagreement",
              "calibrated": "68 % marginal per energy over the calibration space, none outside it"}


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
    """w = |q_hi − q_lo|/2, the interval networks' one-standard-deviation width.  The absolute value
    is the rearrangement of crossed quantiles (q_hi < q_lo, which a network trained per quantile
    can output: measured on a one-epoch network): the same interval, with its ends in order."""
    return 0.5 * np.abs(np.asarray(q_hi) - np.asarray(q_lo))


def width_and_median(q_lo: np.ndarray, q_50: np.ndarray, q_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(w, the median centre): the means over the input samples and the replicas -- the two axes
    before the energies, [..., N_boot, N_r, N_E] -> [..., N_E] -- of the half-width and of q_50."""
    return half_width(q_lo, q_hi).mean(axis=(-3, -2)), np.asarray(q_50).mean(axis=(-3, -2))


def calibrated_total(post: np.ndarray, systematics: list) -> np.ndarray:
    """sqrt(post² + Σ of the systematics squared): the ``paper`` centre's error (no systematics:
    the ``median`` centre's, = post)."""
    return np.sqrt(np.asarray(post) ** 2 + sum(np.asarray(s) ** 2 for s in systematics))


def calibrated_ensembles(cfg) -> list[str]:
    """The ensembles a calibration predicts with: those of the paper's budget (Nref_prior is not
    needed: S calibrates the paper's σ_tot, and Q does not depend on any Σ_X)."""
    return [ensemble for ensemble in cfg["ensembles"] if ensemble != PRIOR_ENSEMBLE]


def calibrate(items: dict, truth: np.ndarray) -> tuple[dict, np.ndarray, dict, dict]:
    """(Q {centre: [N_E]}, S [N_E], R {centre: [N_E, N_E]}, coverage {centre: [N_E]}) of a calibration
    set: ``items`` {central (ρ̄_Nmax), total (σ_tot), median (mean q_50), width (w)} [N_cal, N_E] and the
    exact ``truth`` [N_cal, N_E].  coverage: the share of items covered by c ± Q·w, per energy."""
    centres = {"paper": items["central"], "median": items["median"]}
    Q = {c: conformal_factor(scores(centres[c], truth, items["width"])) for c in CENTRES}
    R = {c: score_correlation(centres[c], truth, items["width"]) for c in CENTRES}
    coverage = {c: np.mean(np.abs(centres[c] - truth) <= Q[c] * items["width"], axis=0) for c in CENTRES}
    return Q, conformal_factor(scores(items["central"], truth, items["total"])), R, coverage


def result_systematics(b) -> list[str]:
    """The budget's systematics the ``paper`` centre adds: sys_b, sys_rho, sys_n (+ sys_prior)."""
    return [*SYSTEMATICS] + ([PRIOR_SYSTEMATIC[0]] if b.has_prior else [])


def calibrated_results(Q: dict, b, width: np.ndarray, median: np.ndarray) -> dict:
    """{centre: {central_calibrated, post, total_calibrated}} [N_E] from the factors Q, the paper's
    budget b (budget.Budget: ρ̄_Nmax and the Σ_X) and the interval networks' width w and median
    (means over samples and replicas) of one input."""
    out = {}
    for centre in CENTRES:
        post = Q[centre] * width
        systematics = [b.component(name) for name in result_systematics(b)] if centre == "paper" else []
        out[centre] = {"central_calibrated": b.central if centre == "paper" else median, "post": post,
                       "total_calibrated": calibrated_total(post, systematics)}
    return out


def calibrated_covariances(results: dict, R: dict, b) -> dict:
    """{centre: covariance [N_E, N_E]}: D R D with D = diag(post), plus for the ``paper`` centre each
    systematic fully correlated with its sign (covariance.systematic_covariance); its diagonal is
    total_calibrated²."""
    out = {}
    for centre in CENTRES:
        cov = calibrated_covariance(results[centre]["post"], R[centre])
        if centre == "paper":
            cov = cov + sum(systematic_covariance(b.deltas[name], b.component(name)) for name in result_systematics(b))
        out[centre] = cov
    return out


def scaled_total(S: np.ndarray, b) -> np.ndarray:
    """``total_scaled`` = S·σ_tot: the baseline that needs no new network."""
    return S * b.total

"""The calibrated error: split-conformal factors over a calibration set, and the calibrated result.

Why.  The paper's σ_tot measures how much the audience disagrees with itself; it states no
coverage, and a bias common to the whole audience is invisible to it.  A calibration set of
densities the networks never saw measures how far a centre actually lies from the truth in units
of a width, and split-conformal calibration turns that width into an honest error.

Calibration (one σ).  N_cal densities of the calibration space, each measured once and given
N_boot,cal bootstrap samples, are predicted exactly as user data are.  For a centre c and a width
w, the score of item i at energy k is

    e_ik = |c_ik − y_ik| / w_ik,

and the conformal factor Q_k is the ⌈(N_cal + 1)·0.6827⌉-th smallest of e_1k..e_Nk (+inf if that
rank exceeds N_cal).  For a new item exchangeable with the calibration items, the interval c ± Q·w
then covers its truth with probability at least 68.27 % at each energy (and at most 68.27 % +
1/(N_cal + 1)): the guarantee is marginal -- per energy, on average over the calibration space --
and none outside that space.

Per kind of density (Mondrian conformal).  One factor per energy is honest on average and wrong
per kind of density: too narrow where the width under-states the deviation, too wide where it
over-states it.  The items are therefore split, at each energy, into ``n_bins`` bins of a feature
the user also sees (``condition_feature``: computed from the centre and the width, never from the
truth), with edges at the feature's quantiles over the calibration set, and each (energy, bin) gets
its own factor by the same rule among the items in it.  A new item gets the factor of its bin.
The guarantee then holds per energy *and per bin* (for items exchangeable with the calibration
items of that bin), hence still marginally; each bin holds N_cal/n_bins items, at least
MIN_BIN_ITEMS (``bins_for``).  One bin is the marginal calibration above.

The centres, each with its width:
    ``audience``: c = ρ̄_Nmax, w = σ_tot (the paper's budget), per bin of its relative width:
                  σ_cal = Q_k[bin]·σ_tot -- the audience's own result, calibrated; no network
                  beyond the audience.  The recommended centre of the recommended presets.
    ``paper``:    c = ρ̄_Nmax, w = the interval networks' width, σ_cal² = (Q·w)² + Σ_b² + Σ_ρ²
                  + Σ_n² (+ Σ_prior²)
    ``median``:   c = mean over samples and replicas of the interval networks' q_50, σ_cal = Q·w
The interval networks' q_lo, q_50, q_hi at Φ(−1), 0.5, Φ(1) give w = |q_hi − q_lo|/2, one standard
deviation of a Gaussian posterior.  σ_stat and σ_rep are not added to Q·w: Q is calibrated on the
centre's actual deviation, which already contains both.  ``post`` = Q·w is the calibrated width.
``total_scaled`` = S·σ_tot, with S the marginal factor of the audience centre (one bin): the
baseline that the per-kind factors are judged against.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from covariance import calibrated_covariance, score_correlation, systematic_covariance
from roles import CALIBRATED_CENTRES as CENTRES
from roles import NETWORK_CENTRES, PRIOR_ENSEMBLE, PRIOR_SYSTEMATIC, SYSTEMATICS

COVERAGE = float(erf(1 / math.sqrt(2)))          # 0.6827: one standard deviation of a Gaussian
MIN_BIN_ITEMS = 200                              # calibration items per (energy, bin) at least
# what each result promises, as the outputs state it
GUARANTEES = {"paper": "no coverage stated: it measures the audience's disagreement",
              "calibrated": "68 % per energy and per bin of the feature over the calibration space "
                            "(so on average over it too), none outside it"}


def available_centres(interval_networks: bool) -> tuple[str, ...]:
    """The centres a calibration can have: the audience's always, the others with the interval networks."""
    return CENTRES if interval_networks else tuple(c for c in CENTRES if c not in NETWORK_CENTRES)


def result_centres(cfg) -> tuple[str, ...]:
    """The centres of an audience's calibrated result, the recommended one (``calibrated_centre``) first."""
    centres = available_centres(cfg["interval_networks"])
    return (cfg["calibrated_centre"], *(c for c in centres if c != cfg["calibrated_centre"]))


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


# --- per bin of a feature: the Mondrian bins --------------------------------------------------------
# what the audience centre's bins are cut on (recorded in the calibration file)
FEATURE = "relative width sigma_tot(E) / max_E |rho_bar(E)|"


def condition_feature(central: np.ndarray, total: np.ndarray) -> np.ndarray:
    """The feature the audience centre's bins are cut on, [..., N_E] from ρ̄_Nmax and σ_tot
    [..., N_E]: the relative width σ_tot(E) / max_E |ρ̄(E)|, the precision a user reads off the
    result.  Chosen by measurement on held-out halves of the calibration set among twelve features
    of the result (docs/method.md#per-kind)."""
    central, total = np.asarray(central, dtype=np.float64), np.asarray(total, dtype=np.float64)
    return total / np.abs(central).max(axis=-1, keepdims=True)


def bins_for(n_cal: int, requested: int) -> int:
    """The number of bins: ``requested``, fewer if a bin would hold fewer than MIN_BIN_ITEMS items
    (at least 1: the marginal calibration)."""
    return max(1, min(int(requested), n_cal // MIN_BIN_ITEMS))


def bin_edges(feature: np.ndarray, n_bins: int) -> np.ndarray:
    """The inner edges [n_bins − 1, N_E] of the bins at each energy: the feature's quantiles at
    j/n_bins over the calibration items, feature [N_cal, N_E] (equal counts per bin)."""
    return np.quantile(np.asarray(feature, dtype=np.float64), np.arange(1, n_bins) / n_bins, axis=0).reshape(
        n_bins - 1, -1)


def bin_of(feature: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin (0..n_bins − 1) of each value of the feature [..., N_E]: the number of inner edges
    below it (a value on an edge goes to the lower bin)."""
    feature = np.asarray(feature, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    return (feature[None] > edges[(slice(None),) + (None,) * (feature.ndim - 1)]).sum(axis=0)


def mondrian_factor(item_scores: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Q [n_bins, N_E]: the conformal factor of each (bin, energy) among the items in it, from
    scores and bins [N_cal, N_E]."""
    out = np.empty((n_bins, item_scores.shape[1]))
    for j in range(n_bins):
        for k in range(item_scores.shape[1]):
            out[j, k] = conformal_factor(item_scores[bins[:, k] == j, k][:, None])[0]
    return out


def factor_at(Q: np.ndarray, edges: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Q [n_bins, N_E] of each value's bin, [..., N_E] from the feature [..., N_E]."""
    return Q[bin_of(feature, edges), np.arange(Q.shape[1])]


@dataclass
class Factors:
    """One centre's calibration: Q [n_bins, N_E], the inner bin edges [n_bins − 1, N_E] (none with
    one bin), the correlation R [N_E, N_E] of the signed scores (c − y)/(Q·w) over the set and the
    share of the set covered by c ± Q·w per energy (≥ 0.6827 by construction: a check)."""
    Q: np.ndarray
    edges: np.ndarray
    R: np.ndarray
    coverage: np.ndarray

    def at(self, feature: np.ndarray) -> np.ndarray:
        """The factor of each item's bin, [..., N_E] from the feature [..., N_E]."""
        return factor_at(self.Q, self.edges, feature)


def centre_and_width(items: dict, centre: str) -> tuple[np.ndarray, np.ndarray]:
    """(c, w) of a centre from per-item (or one input's) values {central (ρ̄_Nmax), total (σ_tot)
    [, median (mean q_50), width (w)]}."""
    if centre == "audience":
        return items["central"], items["total"]
    return (items["central"] if centre == "paper" else items["median"]), items["width"]


def calibrate_centre(items: dict, truth: np.ndarray, centre: str, n_bins: int) -> Factors:
    """The Factors of one centre from the calibration set: ``items`` [N_cal, N_E] (centre_and_width)
    and the exact ``truth`` [N_cal, N_E]; the audience centre with ``n_bins`` bins of
    condition_feature, the others with one."""
    c, w = centre_and_width(items, centre)
    e = scores(c, truth, w)
    feature = condition_feature(items["central"], items["total"])
    if centre == "audience" and n_bins > 1:
        edges = bin_edges(feature, n_bins)
        Q = mondrian_factor(e, bin_of(feature, edges), n_bins)
    else:
        edges, Q = np.empty((0, e.shape[1])), conformal_factor(e)[None]
    post = factor_at(Q, edges, feature) * w
    return Factors(Q, edges, score_correlation(c, truth, post), np.mean(np.abs(c - truth) <= post, axis=0))


def calibrate(items: dict, truth: np.ndarray, centres, n_bins: int) -> tuple[dict, np.ndarray]:
    """({centre: Factors}, S [N_E]) of a calibration set (calibrate_centre); S is the audience
    centre's marginal factor, the baseline ``total_scaled``."""
    factors = {c: calibrate_centre(items, truth, c, n_bins) for c in centres}
    return factors, conformal_factor(scores(items["central"], truth, items["total"]))


# --- the calibrated result of one input ----------------------------------------------------------
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
    the ``audience`` and ``median`` centres', = post)."""
    return np.sqrt(np.asarray(post) ** 2 + sum(np.asarray(s) ** 2 for s in systematics))


def calibrated_ensembles(cfg) -> list[str]:
    """The ensembles a calibration predicts with: those of the paper's budget (Nref_prior is not
    needed: no factor depends on Σ_prior)."""
    return [ensemble for ensemble in cfg["ensembles"] if ensemble != PRIOR_ENSEMBLE]


def result_systematics(b) -> list[str]:
    """The budget's systematics the ``paper`` centre adds: sys_b, sys_rho, sys_n (+ sys_prior), less
    those the audience cannot measure (budget.Budget.unmeasured)."""
    return [name for name in SYSTEMATICS if name not in b.unmeasured] + ([PRIOR_SYSTEMATIC[0]] if b.has_prior else [])


def calibrated_results(factors: dict, b, width: np.ndarray | None = None, median: np.ndarray | None = None) -> dict:
    """{centre: {central_calibrated, post, total_calibrated}} [N_E] for each centre of ``factors``,
    from the paper's budget b (budget.Budget: ρ̄_Nmax, σ_tot and the Σ_X) and, for the interval
    networks' centres, their width w and median (means over samples and replicas) of one input."""
    items = {"central": b.central, "total": b.total, "width": width, "median": median}
    feature = condition_feature(b.central, b.total)
    out = {}
    for centre, f in factors.items():
        c, w = centre_and_width(items, centre)
        post = f.at(feature) * w
        systematics = [b.component(name) for name in result_systematics(b)] if centre == "paper" else []
        out[centre] = {"central_calibrated": c, "post": post, "total_calibrated": calibrated_total(post, systematics)}
    return out


def calibrated_covariances(results: dict, factors: dict, b) -> dict:
    """{centre: covariance [N_E, N_E]}: D R D with D = diag(post), plus for the ``paper`` centre each
    systematic fully correlated with its sign (covariance.systematic_covariance); its diagonal is
    total_calibrated²."""
    out = {}
    for centre, result in results.items():
        cov = calibrated_covariance(result["post"], factors[centre].R)
        if centre == "paper":
            cov = cov + sum(systematic_covariance(b.deltas[name], b.component(name)) for name in result_systematics(b))
        out[centre] = cov
    return out


def scaled_total(S: np.ndarray, b) -> np.ndarray:
    """``total_scaled`` = S·σ_tot: the audience centre's marginal calibration (one bin)."""
    return S * b.total

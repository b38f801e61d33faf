"""Correlations between energies: the covariance of the result over the N_E energies.

Neighbouring energies are strongly correlated (the grid step is 0.053 against σ ≥ 0.44, so one
density carries only ~4-6 independent numbers), and whoever fits ρ_σ(E), integrates it against a
weight or compares it at two energies needs the covariance, not N_E separate errors.  One function
per term, pure numpy, with the conventions of budget.py (stated there once):

- statistical: the covariance over the input samples b of mean_r P_Nmax[b, r, E].  For bootstrap
  samples the sample covariance (ddof = 1); for jackknife samples the jackknife covariance
  (N-1)/N Σ_b (x_b - x̄)(x_b - x̄)ᵀ.  Its diagonal is σ_stat².
- replica: the covariance over the replicas r of mean_b P_Nmax[b, r, E] (ddof = 1; NaN for a
  single replica).  Its diagonal is σ_rep².
- each systematic X fully correlated across energies, with its sign: s_X s_Xᵀ with
  s_X = sign(Δ_X) Σ_X.  This is a convention: Σ_X measures how far the answer moves when one
  ingredient of the audience changes, and the whole curve moves together, in the direction of Δ_X.
  Its diagonal is Σ_X².
So the diagonal of the total covariance is σ_tot² exactly (σ_tot,prior² with the prior term).

The calibrated error (the interval networks' width w scaled by the conformal factor Q) has the
covariance D R D with D = diag(σ_post) and R the correlation, over the calibration set, of the
signed scores (c - y) / σ_post; for the ``paper`` centre the Σ_X terms are added.

``chi2`` turns a covariance into a closure statistic: the χ² of (ρ̄ - truth) over the directions
the covariance determines (an eigenvalue cut, since the matrix is nearly singular).
"""
from __future__ import annotations

import numpy as np

from budget import COMPONENTS, PRIOR_SYSTEMATIC, REFERENCE, SAMPLE_KINDS, SYSTEMATICS

CONVENTION = ("statistical: covariance over the input samples of the replica mean of Nmax; replica: "
              "covariance over Nmax's replicas of the sample mean; each systematic X fully correlated "
              "across energies with its sign, s s^T with s = sign(Delta_X) Sigma_X; total = their sum")

# χ² closure: keep the eigen-directions of the correlation matrix whose eigenvalue is at least this
# share of the largest.  A smeared density has ~4-6 independent values on 47 energies; below this
# the eigenvalues of a covariance estimated from O(10²-10³) samples are noise, and their inverse
# would make the χ² measure that noise.
EIGENVALUE_CUT = 1e-3


def sample_covariance(x: np.ndarray, kind: str = "bootstrap") -> np.ndarray:
    """Covariance over the rows of x [N, E] (the statistical convention of budget.sample_std)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    d = x - x.mean(axis=0)
    if kind == "bootstrap":
        return d.T @ d / (n - 1)
    if kind == "jackknife":
        return (n - 1) / n * (d.T @ d)
    raise ValueError(f"sample kind {kind!r}: expected one of {SAMPLE_KINDS}")


def stat_covariance(P: np.ndarray, kind: str = "bootstrap") -> np.ndarray:
    """Cov_stat[E, E'] over the samples of mean_r P[b, r, E] -> [E, E]."""
    return sample_covariance(np.asarray(P, dtype=np.float64).mean(axis=1), kind)


def replica_covariance(P: np.ndarray) -> np.ndarray:
    """Cov_rep[E, E'] over the replicas of mean_b P[b, r, E], ddof = 1 -> [E, E] (NaN for one)."""
    P = np.asarray(P, dtype=np.float64)
    if P.shape[1] < 2:
        return np.full((P.shape[2], P.shape[2]), np.nan)
    return sample_covariance(P.mean(axis=0), "bootstrap")


def systematic_covariance(delta: np.ndarray, sys: np.ndarray) -> np.ndarray:
    """s sᵀ with s = sign(Δ_X) Σ_X: one systematic, fully correlated across energies -> [E, E]."""
    s = np.sign(np.asarray(delta, dtype=np.float64)) * np.asarray(sys, dtype=np.float64)
    s = np.where(np.isnan(delta) | np.isnan(sys), np.nan, s)
    return np.outer(s, s)


def calibrated_covariance(post: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """D R D with D = diag(σ_post) and R the calibration set's correlation of the scores."""
    post = np.asarray(post, dtype=np.float64)
    return post[:, None] * np.asarray(correlation, dtype=np.float64) * post[None, :]


def score_correlation(centre: np.ndarray, truth: np.ndarray, width: np.ndarray) -> np.ndarray:
    """R: the correlation over items i of the signed scores (c_ik - y_ik) / w_ik -> [E, E]."""
    scores = (np.asarray(centre, dtype=np.float64) - np.asarray(truth, dtype=np.float64)) / np.asarray(width)
    return correlation(sample_covariance(scores, "bootstrap"))


def correlation(cov: np.ndarray) -> np.ndarray:
    """The correlation matrix of a covariance (NaN where a variance is zero or NaN)."""
    cov = np.asarray(cov, dtype=np.float64)
    d = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / np.outer(d, d)


def chi2(central: np.ndarray, truth: np.ndarray, cov: np.ndarray,
         cut: float = EIGENVALUE_CUT) -> tuple[float, int]:
    """(χ², k): the χ² of d = ρ̄ - truth with the covariance, over the k eigen-directions of the
    correlation matrix R = D⁻¹ Cov D⁻¹ (D = diag(√Cov)) whose eigenvalue is ≥ cut · the largest.
    For Gaussian deviations with exactly this covariance, χ² follows χ²(k).  NaN (and k = 0) if
    the covariance has a NaN or a zero variance."""
    cov = np.asarray(cov, dtype=np.float64)
    d = np.asarray(central, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    scale = np.sqrt(np.diag(cov))
    if not (np.all(np.isfinite(cov)) and np.all(np.isfinite(d)) and np.all(scale > 0)):
        return float("nan"), 0
    values, vectors = np.linalg.eigh(cov / np.outer(scale, scale))
    keep = values >= cut * values.max()
    projections = vectors[:, keep].T @ (d / scale)
    return float(np.sum(projections**2 / values[keep])), int(keep.sum())


def result_covariances(predictions: dict, b, kind: str = "bootstrap") -> dict:
    """The covariance of the paper's result and of each of its terms, from the ensembles'
    predictions {ensemble: P[b, r, E] or None} and their budget b (budget.error_budget):
    {'stat', 'rep', 'sys_b', 'sys_rho', 'sys_n', 'total'} [E, E], and with the prior systematic
    'sys_prior' and 'total_with_prior'.  diag(total) = σ_tot², diag(total_with_prior) = σ_tot,prior²;
    a term that cannot be computed is NaN, and so is every total containing it."""
    P_max = predictions[REFERENCE]
    terms = {"stat": stat_covariance(P_max, kind), "rep": replica_covariance(P_max)}
    for name in SYSTEMATICS:
        terms[name] = systematic_covariance(b.deltas[name], b.component(name))
    terms["total"] = sum(terms[name] for name in COMPONENTS if name not in b.unmeasured)
    if b.has_prior:
        name = PRIOR_SYSTEMATIC[0]
        terms[name] = systematic_covariance(b.deltas[name], b.component(name))
        terms["total_with_prior"] = terms["total"] + terms[name]
    return terms

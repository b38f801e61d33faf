"""Closure tests (method §8-9): how a mock is measured, and how a reconstruction of it is judged.

Measuring a mock (method §8).  A mock has an exact correlator C and exact truths ρ_σ(E_k).  A
closure test must see the mock the way data are seen (``closure_level`` of the preset):
  level 1 (the default): the mock is measured once, C̄ = C + s L z₀ (method §4: s = C(t_min) /
      C_latt(t_min), L = chol(Σ_latt), z₀ ~ N(0, I) from a seeded stream of its own, one per mock
      and repetition), and the N_boot bootstrap samples are drawn around that measurement,
      C̄ + s L z_b.  The central value then carries the measurement's fluctuation, as a result on
      real data does, and honest errors cover the truth ≈ 68 % of the time.
  level 0 (a labelled diagnostic, never the default): the samples are drawn around the exact C,
      C + s L z_b.  The central value has no statistical fluctuation, so any unbiased estimator
      approaches 100 % coverage whatever its errors.
The two levels share z_b: the level-1 samples are the level-0 ones shifted by s L z₀, so they
differ by exactly the measurement's offset.  s is the exact C's (the noise of method §4 belongs to
the mock, not to one measurement of it).

Judging a reconstruction (method §9).  The statistics below take arrays [n_rows, N_E]: one row per
closure unit (a mock or a test density, measured once), its central value ρ̄, its exact truth
and an error σ (σ_tot, or any other error column of the budget).  ``groups`` [n_rows] names the
independent unit a row belongs to: several measurements of one test density share that density's
bias, so the density, not the row, is what is independent (default: every row its own group).
Conventions, stated once and used everywhere:
- covered: |ρ̄ - truth| ≤ σ at one energy (probability erf(1/√2) = 68.27 % for honest Gaussian
  errors: ``HONEST_COVERAGE``).
- coverage: the share of covered (row, energy) pairs.  Its standard error is the spread of the
  groups' own coverages (mean over the group's rows and energies), std (ddof = 1) / √n_groups.
  Energies are never counted as independent: neighbouring ones are strongly correlated (grid step
  0.053 against σ ≥ 0.44, ~4-6 independent values per density).  NaN for a single group.
- coverage versus energy: the share of rows covered at each energy, with the same standard error
  per energy.
- mean |pull|: the mean over (row, energy) of |ρ̄ - truth| / σ (√(2/π) = 0.80 for honest errors).
- R_bv, the bias-to-variance ratio of NNPDF's closure tests (arXiv:2111.05787): at each point
  (group, energy) the bias is the mean over the group's measurements of (ρ̄ - truth)², the
  variance the mean of σ²; R_bv = sqrt(mean over points of bias / variance).  1 for honest
  errors, > 1 when they are too small, < 1 when they are too large.  Each point is normalised by
  its own variance, as NNPDF normalises each data point by its covariance, so that R_bv weighs the
  points equally, as coverage and mean |pull| do: a ratio of sums over all points would be carried
  by the few points with the largest σ (measured on the demo audience: the top 10 % of σ² carry
  40-90 % of the sum) and can read 0.7 for a family whose coverage is 47 %.  With one row per
  group it is the root-mean-square pull.  Its standard error is the delete-one-group jackknife's.
- verdict: ``honest`` when the coverage is within 2 standard errors of 68.27 %, R_bv within 2
  standard errors of 1, and the coverage at every energy within 4 binomial standard errors
  (√(p(1-p)/n_groups), p = 68.27 %) of 68.27 %; otherwise it names what fails.  A single group
  has no standard error and gets no verdict ("undetermined").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from budget import pulls
from sigma_model_utils import add_noise

CLOSURE_LEVELS = (0, 1)
HONEST_COVERAGE = float(erf(1 / np.sqrt(2)))       # 0.6827
HONEST_MEAN_ABS_PULL = float(np.sqrt(2 / np.pi))   # 0.7979
VERDICT_SIGMAS = 2.0          # coverage and R_bv: within this many standard errors of honest
ENERGY_VERDICT_SIGMAS = 4.0   # coverage at each energy (47 correlated tests): within this many


# --- measuring a mock ----------------------------------------------------------------------------
def closure_samples(clean: np.ndarray, noise, level: int, measurement_rng: np.random.Generator,
                    sample_rng: np.random.Generator, n_boot: int) -> tuple[np.ndarray, np.ndarray]:
    """(N_boot samples [n_boot, n_t], the measurement C̄ [n_t]) of a mock's exact correlator
    ``clean`` at closure ``level`` (see the module docstring; at level 0, C̄ is C itself)."""
    if level not in CLOSURE_LEVELS:
        raise ValueError(f"closure level {level!r}: expected one of {CLOSURE_LEVELS}")
    clean = np.asarray(clean, dtype=np.float64)
    around_truth = add_noise(clean[None, :], noise, sample_rng, n_boot)[0]
    if level == 0:
        return around_truth, clean.copy()
    offset = add_noise(clean[None, :], noise, measurement_rng, 1)[0, 0] - clean
    return around_truth + offset, clean + offset


def level_label(level: int) -> str:
    """How outputs name a level: 'level 1' or 'level 0 (diagnostic)'."""
    return "level 1" if int(level) == 1 else f"level {int(level)} (diagnostic)"


# --- judging a reconstruction ----------------------------------------------------------------------
def _rows(central, truth, error, groups):
    central, truth, error = (np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in (central, truth, error))
    truth = np.broadcast_to(truth, central.shape)
    error = np.broadcast_to(error, central.shape)
    groups = np.arange(central.shape[0]) if groups is None else np.asarray(groups)
    if groups.shape != (central.shape[0],):
        raise ValueError(f"groups of shape {list(groups.shape)}: expected one per row ({central.shape[0]})")
    return central, truth, error, groups


def _group_means(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """[n_groups, ...]: the mean of ``values`` [n_rows, ...] over each group's rows."""
    return np.stack([values[groups == g].mean(axis=0) for g in np.unique(groups)])


def _standard_error(per_group: np.ndarray) -> np.ndarray:
    n = per_group.shape[0]
    return per_group.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(per_group.shape[1:], np.nan)


def covered(central, truth, error) -> np.ndarray:
    """|ρ̄ - truth| ≤ σ, elementwise (False where σ is NaN)."""
    return np.abs(np.asarray(central) - np.asarray(truth)) <= np.asarray(error)


def coverage(central, truth, error, groups=None) -> tuple[float, float]:
    """(share of covered (row, energy) pairs, its standard error over groups)."""
    central, truth, error, groups = _rows(central, truth, error, groups)
    per_group = _group_means(covered(central, truth, error).mean(axis=1), groups)
    return float(per_group.mean()), float(_standard_error(per_group))


def coverage_vs_energy(central, truth, error, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """(share of rows covered at each energy [N_E], its standard error over groups [N_E])."""
    central, truth, error, groups = _rows(central, truth, error, groups)
    per_group = _group_means(covered(central, truth, error).astype(np.float64), groups)
    return per_group.mean(axis=0), _standard_error(per_group)


def mean_abs_pull(central, truth, error) -> float:
    """Mean over (row, energy) of |ρ̄ - truth| / σ."""
    return float(np.mean(np.abs(pulls(np.asarray(central), np.asarray(truth), np.asarray(error)))))


def bias_variance_ratio(central, truth, error, groups=None) -> tuple[float, float]:
    """(R_bv = sqrt(mean over (group, energy) of mean_rows (ρ̄ - truth)² / mean_rows σ²),
    its delete-one-group jackknife error)."""
    central, truth, error, groups = _rows(central, truth, error, groups)
    with np.errstate(divide="ignore", invalid="ignore"):      # σ = 0 gives R_bv = inf, not a warning
        ratio = (_group_means((central - truth) ** 2, groups) / _group_means(error**2, groups)).mean(axis=1)
        value = float(np.sqrt(ratio.mean()))
        n = len(ratio)
        if n < 2:
            return value, np.nan
        leave_out = np.sqrt((ratio.sum() - ratio) / (n - 1))
        return value, float(np.sqrt((n - 1) * np.mean((leave_out - leave_out.mean()) ** 2)))


def crps(central, truth, error) -> float:
    """Mean over (row, energy) of the continuous ranked probability score of the Gaussian
    N(ρ̄, σ²) at the truth (scoringrules.crps_normal): lower is better; it rewards errors that are
    both honest and sharp, in the units of ρ_σ."""
    import scoringrules
    return float(np.mean(scoringrules.crps_normal(np.asarray(truth, dtype=np.float64),
                                                  np.asarray(central, dtype=np.float64),
                                                  np.asarray(error, dtype=np.float64))))


def pit(central, truth, error) -> np.ndarray:
    """The probability integral transform Φ((truth − ρ̄)/σ) per (row, energy): uniform on [0, 1]
    for calibrated Gaussian errors, piled at 0 and 1 when σ is too small, in the middle when too
    large, lopsided when ρ̄ is biased."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(truth) - np.asarray(central)) / np.asarray(error)
    return 0.5 * (1 + erf(z / np.sqrt(2)))


def sharpness(error, truth) -> float:
    """Median over (row, energy) of σ / max_E |truth| of the row: how wide the error is, in units
    of the density's own size (smaller is sharper; judge it only together with coverage)."""
    error, truth = np.atleast_2d(error), np.atleast_2d(truth)
    return float(np.median(error / np.abs(truth).max(axis=1, keepdims=True)))


@dataclass
class ClosureStatistics:
    """The closure figures of a set of rows against their truths (see the module docstring)."""
    coverage: float
    coverage_err: float
    mean_abs_pull: float
    r_bv: float
    r_bv_err: float
    coverage_vs_energy: np.ndarray
    coverage_vs_energy_err: np.ndarray
    n_rows: int
    n_groups: int

    @property
    def verdict(self) -> str:
        """'honest', 'undetermined' (one group), or what fails, e.g. 'errors too small'."""
        if self.n_groups < 2:
            return "undetermined"
        problems = []
        low = self.coverage + VERDICT_SIGMAS * self.coverage_err < HONEST_COVERAGE
        high = self.coverage - VERDICT_SIGMAS * self.coverage_err > HONEST_COVERAGE
        big = self.r_bv - VERDICT_SIGMAS * self.r_bv_err > 1 or not np.isfinite(self.r_bv)
        small = self.r_bv + VERDICT_SIGMAS * self.r_bv_err < 1
        if low or big:
            problems.append("errors too small")
        if high or small:
            problems.append("errors too large")
        binomial = np.sqrt(HONEST_COVERAGE * (1 - HONEST_COVERAGE) / self.n_groups)
        if np.any(np.abs(self.coverage_vs_energy - HONEST_COVERAGE) > ENERGY_VERDICT_SIGMAS * binomial):
            problems.append("coverage off at some energies")
        return ", ".join(problems) or "honest"

    def as_dict(self) -> dict:
        return {"coverage": self.coverage, "coverage_err": self.coverage_err,
                "mean_abs_pull": self.mean_abs_pull, "r_bv": self.r_bv, "r_bv_err": self.r_bv_err,
                "n_rows": self.n_rows, "n_groups": self.n_groups, "verdict": self.verdict}


def closure_statistics(central, truth, error, groups=None) -> ClosureStatistics:
    """Coverage (± error), mean |pull|, R_bv (± error) and coverage versus energy of the rows."""
    central, truth, error, groups = _rows(central, truth, error, groups)
    cov, cov_err = coverage(central, truth, error, groups)
    r_bv, r_bv_err = bias_variance_ratio(central, truth, error, groups)
    per_energy, per_energy_err = coverage_vs_energy(central, truth, error, groups)
    return ClosureStatistics(cov, cov_err, mean_abs_pull(central, truth, error), r_bv, r_bv_err,
                             per_energy, per_energy_err, central.shape[0], len(np.unique(groups)))


# the figures every error is judged by, side by side (validate_coverage.py, compare_methods.py)
ERROR_FIGURES = ("coverage", "coverage_err", "mean_abs_pull", "r_bv", "crps", "sharpness")


def error_figures(central, truth, error, groups=None) -> dict:
    """ERROR_FIGURES of one error: coverage (± its error), mean |pull|, R_bv, the CRPS of N(ρ̄, σ²)
    (``crps``) and the sharpness (``sharpness``) of the rows, by the definitions above."""
    stats = closure_statistics(central, truth, error, groups)
    return {"coverage": stats.coverage, "coverage_err": stats.coverage_err, "mean_abs_pull": stats.mean_abs_pull,
            "r_bv": stats.r_bv, "crps": crps(central, truth, error), "sharpness": sharpness(error, truth)}

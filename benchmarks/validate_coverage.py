"""Are the audience's error bars honest?  Level-1 closure tests on many random test densities
(issues 6 and 9, method §8-9).

    python benchmarks/validate_coverage.py --preset demo [--root DIR] [--n-per-family 30]
        [--measurements 3] [--audience-seeds K] [--families breit_wigner,O3_threshold] [--no-train]
    python benchmarks/validate_coverage.py --compare demo=DIR1 --compare larger=DIR2   # side by side

1. Audiences.  ``--audience-seeds K`` judges K audiences that differ only in the preset's ``seed``,
   S_k = seed + k.  Audience 0 is the one under --root itself (what ``make demo`` trained);
   audience k ≥ 1 lives in <root>/audiences/seed_<S_k>, an ordinary pipeline root:
   ``python run_pipeline.py --preset P --set seed=S_k --root <root>/audiences/seed_<S_k>`` makes or
   reuses exactly it.  Checkpoints that are missing are trained with the pipeline's own generation
   and training tasks (run_pipeline.tasks, one process each with the runner's environment: one
   torch thread unless OMP_NUM_THREADS is set; finished work is kept); --no-train stops instead.
2. Test densities.  For each family of validation.py (out-of-distribution densities, plus the
   in-distribution control ``training_space``) n densities with exact correlators and truths.  Each
   is measured R times (``--measurements``, default 3): C̄_{i,m} = C_i + s L z₀ with
   rng_for(cfg, 'validation-measurement', family, i, m), and gets N_boot samples around each
   measurement, drawn with rng_for(cfg, 'validation-noise', family, i, m): the level-1 closure
   test of method §8 (closure.closure_samples).  The level-0 diagnostic (the same sample noise around
   the exact C_i) is computed beside it, to show what level 0 hides; the preset's
   ``closure_level`` does not apply here, both levels are always reported.  These streams use the
   seed as given, never the audiences' seeds: every audience is judged on the same test set.
3. Every replica of every ensemble predicts every sample (prediction.predict_ensemble, one batched
   pass per audience, σ, ensemble and family); the budget of method §8 is computed per (density,
   measurement, level) with budget.error_budget.
4. Per audience, family, σ and level, with closure.py's statistics (its docstring states the
   conventions): coverage of σ_tot with its standard error (from the spread over densities, each
   density's measurements averaged first; never over energies), mean |pull|, R_bv (the NNPDF
   bias-to-variance ratio, 1 for honest errors) with its jackknife error, coverage versus energy,
   and the verdict; besides, the coverage of σ_stat ⊕ σ_rep alone (the baseline without the
   systematics), the median relative error |ρ̄ - truth|/|truth| over the energies where |truth| ≥
   10% of that density's maximum, the median share of σ_tot² carried by Σ_b² + Σ_ρ² + Σ_n², and,
   among the misses (|ρ̄ - truth| > σ_tot), the share that every ensemble makes on the same side by
   more than σ_tot: a bias common to the audience, which no Σ_X (a difference of ensembles) can
   see (with the prior systematic Nref_prior is one of the ensembles, so the share then counts the
   misses that even the second space's networks make: those Σ_prior cannot see either).  Over the
   K audiences: the mean and the spread (standard deviation, ddof = 1) of each.

Writes under --root, in results/validation/: coverage.csv (one row per audience, family, σ and
level), coverage_summary.csv (mean and spread over the audiences), coverage.md (the tables),
densities.csv (every density's parameters and own coverage per audience, measurement and level),
validation.hdf5 (truths, measurements, every result and budget component, with provenance),
pulls.png (pull histograms, level 1 against level 0 and N(0, 1)), coverage_vs_energy.png (per
energy, the share of a family's densities and measurements covered, both levels), chi2.png (the
p-values of the correlated closure statistic, below) and examples_sigma{σ}.png (one reconstruction
per family against its truth).

Every error side by side: for total, total_with_prior (with the prior systematic) and, when the
audience has a calibration file (calibrate_sigma.py; one made with other networks is refused),
total_scaled = S·σ_tot and the calibrated result of each of its centres (calibration.calibrated_results:
the audience centre, and with interval networks the paper and median centres, computed from their
predictions of the same samples; total_calibrated is the recommended centre's): coverage (± its
error), mean |pull|, R_bv, the CRPS of N(c, σ²), the sharpness and χ²/k with that error's
covariance, as <figure>_<error> columns, the table "Every error side by side" of coverage.md, and
pit.png (the PIT histograms, first σ), reliability.png and reliability.csv (σ_tot's and the
recommended calibrated error's coverage by deciles of the predicted relative width σ / max|c|, on
the densities held out from the calibration space and that space's own held-out family).
``held_out_from_calibration`` says whether the family lies outside the calibration space
(validation.held_out_from_calibration).  The family ``calibration_space`` holds held-out densities of
that space itself, where the calibrated errors promise 68 %.  Without a calibration the calibrated
columns are absent and coverage.md says so.

The correlated closure statistic: for each row, the χ² of ρ̄ - truth with the result's covariance
over energies (covariance.result_covariances: statistical, replica and each systematic fully
correlated with its sign), over the k eigen-directions of its correlation matrix kept by the cut
covariance.EIGENVALUE_CUT (covariance.chi2).  Reported per family: the mean of χ²/k (1 for an
honest result and covariance), the share of rows whose p-value under χ²(k) is below 5 % (5 %), and
the median k; the same χ²/k with the prior systematic's covariance.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy import stats as scipy_stats
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import budget as bud  # noqa: E402
import calibration  # noqa: E402
import closure  # noqa: E402
import covariance as cv  # noqa: E402
import validation  # noqa: E402
from calibration_files import calibration_networks, check_networks, read_calibration  # noqa: E402
from cli import main_guard  # noqa: E402
from config import ConfigError, add_common_args, config_from_args, load_config  # noqa: E402
from devices import select_device  # noqa: E402
from figures import plt, save_png  # noqa: E402
from interval_outputs import split_quantiles  # noqa: E402
from io_utils import InputError, atomic_output, provenance, write_attrs  # noqa: E402
from noise_files import load_noise_file  # noqa: E402
from prediction import find_checkpoints, predict_ensemble  # noqa: E402
from prediction_files import InputSamples  # noqa: E402
from roles import INTERVAL_RUN  # noqa: E402
from run_pipeline import missing_outputs, task_environment, tasks  # noqa: E402
from sigma_model_utils import rng_for  # noqa: E402
from tasks import unmeasured_systematics  # noqa: E402

LEVELS = (1, 0)               # the closure test, and the diagnostic shown beside it
RELATIVE_FLOOR = 0.1          # relative errors only where |truth| >= 10% of the density's maximum
HEADLINE = ("coverage", "coverage_err", "mean_abs_pull", "r_bv", "r_bv_err", "coverage_stat_rep",
            "median_rel_error", "median_sys_share", "common_bias_share_of_misses", "chi2_per_dof",
            "chi2_p_below_5pct", "chi2_dof_median")
# with the prior systematic (method §8 extension, Nref_prior in the audience): the same of σ_tot,prior
PRIOR_HEADLINE = ("coverage_with_prior", "coverage_with_prior_err", "mean_abs_pull_with_prior",
                  "r_bv_with_prior", "r_bv_with_prior_err", "chi2_per_dof_with_prior")
# every error judged side by side (those the audience has): the figures below, named <figure>_<error>
ERRORS = ("total", "total_with_prior", "total_scaled", "total_calibrated",
          *(f"total_calibrated_{c}" for c in calibration.CENTRES))
ERROR_FIGURES = (*closure.ERROR_FIGURES, "chi2_per_dof", "centre_rel_error")


# --- 1. audiences ----------------------------------------------------------------------------------
def audience_configs(cfg, k: int) -> list:
    """The K audiences' configurations: seeds seed + k; audience 0 is --root itself, audience k
    an ordinary pipeline root <root>/audiences/seed_<S> run with --set seed=S."""
    if k < 1:
        raise ConfigError(f"--audience-seeds {k}: expected at least 1")
    base = int(cfg["seed"])
    return [cfg] + [load_config(cfg.preset, cfg.overrides + [f"seed={base + j}"],
                                cfg.root / "audiences" / f"seed_{base + j}") for j in range(1, k)]


def ensure_audience(cfg, train: bool) -> None:
    """Reuse the trained audience, or train what is missing with the pipeline's own tasks."""
    missing = [p for p in missing_outputs(cfg, "training") if p.endswith(".pth")]
    if not missing:
        print(f"reusing the audience under {cfg.root} (seed {cfg['seed']}: all {len(cfg['ensembles'])} "
              f"ensembles x {cfg['n_replicas']} replicas x {len(cfg['sigmas_gev'])} sigmas present)")
        return
    if not train:
        raise SystemExit(f"{len(missing)} checkpoint(s) missing, e.g. {missing[0]}; train the audience "
                         f"first (python run_pipeline.py --preset {cfg.preset}"
                         f"{''.join(' --set ' + o for o in cfg.overrides)} --root {cfg.root}) or drop --no-train")
    print(f"{len(missing)} checkpoint(s) missing under {cfg.root}: training the audience (seed "
          f"{cfg['seed']}) with the pipeline's tasks")
    cfg.root.mkdir(parents=True, exist_ok=True)
    for stage, command in tasks(cfg):
        if stage in ("generation", "training"):
            print("$ " + " ".join(command), flush=True)
            subprocess.run(command, check=True, env=task_environment())   # one thread, as make demo


# --- 2. test densities, measured -------------------------------------------------------------------
def draw_inputs(cfg, families, n_per_family: int, n_measurements: int, noise) -> dict:
    """{family: (densities, measured [n, R, n_t], samples {level: [n, R, N_boot, n_t]})}, seeded."""
    out = {}
    n_boot = int(cfg["n_boot"])
    for family in families:
        t0 = time.perf_counter()
        densities = (validation.draw_family(cfg, family, n_per_family)
                     if family in (validation.CONTROL, validation.CALIBRATION_FAMILY)
                     else [validation.draw_family_member(cfg, family, i)
                           for i in tqdm(range(n_per_family), desc=f"exact {family}", leave=False)])
        f = validation.FAMILIES.index(family)
        samples = {level: np.empty((len(densities), n_measurements, n_boot, cfg.n_t)) for level in LEVELS}
        measured = np.empty((len(densities), n_measurements, cfg.n_t))
        for i, d in enumerate(densities):
            for m in range(n_measurements):
                for level in LEVELS:
                    samples[level][i, m], c_bar = closure.closure_samples(
                        d.correlator, noise, level, rng_for(cfg, "validation-measurement", f, i, m),
                        rng_for(cfg, "validation-noise", f, i, m), n_boot)
                    if level == 1:
                        measured[i, m] = c_bar
        print(f"  {family}: {len(densities)} densities x {n_measurements} measurements, exact "
              f"correlators and truths in {time.perf_counter() - t0:.1f} s")
        out[family] = (densities, measured, samples)
    return out


# --- 3. predictions and budgets --------------------------------------------------------------------
def predict_family(cfg, samples: dict, sigma_gev, device) -> dict:
    """{ensemble: {level: P [n, R, N_boot, N_r, N_E]} or None}: one batched pass per ensemble."""
    shape = samples[LEVELS[0]].shape[:3]
    stacked = np.concatenate([samples[level].reshape(-1, cfg.n_t) for level in LEVELS])
    together = InputSamples("validation", stacked, "bootstrap", "closure draws of the mocks",
                            int(cfg["n_boot"]))
    out = {}
    runs = list(cfg["ensembles"]) + ([INTERVAL_RUN] if cfg["interval_networks"] else [])
    for ens in runs:
        present, missing = find_checkpoints(cfg, sigma_gev, ens)
        for path in missing:
            print(f"  WARNING: missing checkpoint {path}")
        if not present:
            out[ens] = None
            continue
        P, _ = predict_ensemble(cfg, together, sigma_gev, ens, present, device)
        P = P.reshape(len(LEVELS), *shape, *P.shape[1:])
        out[ens] = {level: P[j] for j, level in enumerate(LEVELS)}
    return out


def calibration_of(cfg, sigma_gev):
    """The audience's calibration of σ (refused if made with other networks), or None (with a note)
    when it has no calibration file: no calibrated figures then."""
    if not cfg.calibration_file(sigma_gev).is_file():
        print(f"  NOTE: audience under {cfg.root}, sigma = {sigma_gev}: no calibration "
              f"({cfg.calibration_file(sigma_gev)} missing): no calibrated figures (run calibrate_sigma.py)")
        return None
    cal = read_calibration(cfg, sigma_gev)
    check_networks(cfg, cal, calibration_networks(cfg, sigma_gev))
    return cal


def calibrated_rows(cfg, cal, quantiles, budgets: list, truths: np.ndarray) -> dict:
    """{error: (central [rows, N_E], σ [rows, N_E], χ² [rows, 2])} of the calibrated result of each
    centre (the recommended one also as total_calibrated) and of total_scaled, from the rows' budgets
    and, with interval networks, their predictions ``quantiles`` [n, R, N_boot, N_r, 3·N_E] of one level."""
    width = median = [None] * len(budgets)
    if quantiles is not None:
        width, median = calibration.width_and_median(*split_quantiles(quantiles.astype(np.float64)))
        width, median = width.reshape(len(budgets), -1), median.reshape(len(budgets), -1)
    centres = calibration.result_centres(cfg)
    factors = {c: cal.factors[c] for c in centres}
    out = {name: ([], [], []) for name in ("total_scaled", *(f"total_calibrated_{c}" for c in centres))}
    for i, b in enumerate(budgets):
        results = calibration.calibrated_results(factors, b, width[i], median[i])
        covariances = calibration.calibrated_covariances(results, factors, b)
        rows = {"total_scaled": (b.central, calibration.scaled_total(cal.S, b), (np.nan, np.nan))}
        for c in centres:
            r = results[c]
            rows[f"total_calibrated_{c}"] = (r["central_calibrated"], r["total_calibrated"],
                                            cv.chi2(r["central_calibrated"], truths[i], covariances[c]))
        for name, values in rows.items():
            for part, value in zip(out[name], values):
                part.append(value)
    out = {name: tuple(np.array(part) for part in parts) for name, parts in out.items()}
    out["total_calibrated"] = out[f"total_calibrated_{centres[0]}"]
    return out


def budgets_of(predictions: dict, level: int, truths: np.ndarray, unmeasured=()) -> tuple[list, np.ndarray]:
    """([[Budget per measurement] per density], χ² [rows, 2, 2]) of one family, σ and level, with
    ``truths`` [densities, N_E].  χ²[row, j] = (χ², k) of ρ̄ - truth with the covariance of σ_tot
    (j = 0) and of σ_tot,prior (j = 1; NaN without the prior systematic), covariance.chi2."""
    n, n_meas = next(P[level].shape[:2] for P in predictions.values() if P is not None)
    budgets, chi2 = [], np.full((n * n_meas, 2, 2), np.nan)
    for i in range(n):
        row = []
        for m in range(n_meas):
            one = {ens: None if P is None else P[level][i, m] for ens, P in predictions.items()}
            b = bud.error_budget(one, unmeasured=unmeasured)
            covs = cv.result_covariances(one, b)
            for j, name in enumerate(("total", "total_with_prior")):
                if name in covs:
                    chi2[i * n_meas + m, j] = cv.chi2(b.central, truths[i], covs[name])
            row.append(b)
        budgets.append(row)
    return budgets, chi2


def chi2_figures(chi2: np.ndarray) -> dict:
    """Mean χ²/k, the share of rows with p = P(χ²(k) > χ²) < 5 % (5 % for honest errors and
    covariance) and the median k, over the rows with a χ²."""
    ok = np.isfinite(chi2[:, 0]) & (chi2[:, 1] > 0)
    if not ok.any():
        return {"chi2_per_dof": np.nan, "chi2_p_below_5pct": np.nan, "chi2_dof_median": np.nan, "_chi2_p": chi2[:0, 0]}
    value, dof = chi2[ok, 0], chi2[ok, 1]
    p = scipy_stats.chi2.sf(value, dof)
    return {"chi2_per_dof": float(np.mean(value / dof)), "chi2_p_below_5pct": float(np.mean(p < 0.05)),
            "chi2_dof_median": float(np.median(dof)), "_chi2_p": p}


# --- 4. statistics ------------------------------------------------------------------------------------
def median_relative_error(central, truths) -> float:
    """The median of |c − truth|/|truth| over the energies where |truth| ≥ RELATIVE_FLOOR of the
    density's maximum: the accuracy of a central value, whatever its error."""
    relevant = np.abs(truths) >= RELATIVE_FLOOR * np.abs(truths).max(axis=1, keepdims=True)
    return float(np.median(np.abs(central - truths)[relevant] / np.abs(truths[relevant])))


def error_figures(central, truths, error, groups, chi2) -> dict:
    """ERROR_FIGURES of one error: closure.error_figures (coverage ± its error, mean |pull|, R_bv, CRPS
    of N(c, σ²), sharpness), the mean χ²/k (chi2 [rows, 2]) and the median relative error of its
    centre (which tells a CRPS lost to the centre from one lost to the width), the PIT values
    (``_pit``), and per row and energy the predicted relative width σ / max|c| and whether the truth is
    covered (``_relative_width``, ``_covered``: the reliability diagram)."""
    return {**closure.error_figures(central, truths, error, groups), "chi2_per_dof": chi2_figures(chi2)["chi2_per_dof"],
            "centre_rel_error": median_relative_error(central, truths),
            "_pit": closure.pit(central, truths, error).ravel(),
            "_relative_width": (error / np.abs(central).max(axis=1, keepdims=True)).ravel(),
            "_covered": closure.covered(central, truths, error).ravel()}


def family_metrics(truths: np.ndarray, budgets: list, groups=None, chi2: np.ndarray | None = None,
                   calibrated: dict | None = None) -> dict:
    """The figures of one family, σ and level from truths [rows, N_E], the rows' budgets and their
    χ² (budgets_of; None: not computed, NaN); rows of the same ``groups`` entry are measurements of
    one density (closure.py's conventions).  Besides, for every error the audience has (ERRORS:
    total, total_with_prior, and with ``calibrated`` (calibrated_rows) total_scaled and the calibrated
    results) ERROR_FIGURES as <figure>_<error>."""
    if chi2 is None:
        chi2 = np.full((len(budgets), 2, 2), np.nan)
    central = np.stack([b.central for b in budgets])
    total = np.stack([b.total for b in budgets])
    stat_rep = np.stack([np.hypot(b.stat, b.rep) for b in budgets])
    sys2 = np.stack([b.sys_b**2 + b.sys_rho**2 + b.sys_n**2 for b in budgets])
    stats = closure.closure_statistics(central, truths, total, groups)
    miss = np.abs(central - truths)
    # a miss that every ensemble shares (each off by more than σ_tot, on the same side) is a bias
    # common to the whole audience: the Σ_X, differences between ensembles, cannot see it
    side = np.sign(central - truths)
    common = np.ones_like(miss, dtype=bool)
    for k in budgets[0].ensembles:
        c_k = np.stack([b.ensembles[k]["central"] for b in budgets])
        common &= (np.sign(c_k - truths) == side) & (np.abs(c_k - truths) > total)
    missed = miss > total
    with_prior = {}
    if budgets[0].has_prior:
        p = closure.closure_statistics(central, truths, np.stack([b.total_with_prior for b in budgets]), groups)
        with_prior = dict(zip(PRIOR_HEADLINE, (p.coverage, p.coverage_err, p.mean_abs_pull, p.r_bv, p.r_bv_err)),
                          verdict_with_prior=p.verdict,
                          chi2_per_dof_with_prior=chi2_figures(chi2[:, 1])["chi2_per_dof"])
    errors = {"total": (central, total, chi2[:, 0])}
    if budgets[0].has_prior:
        errors["total_with_prior"] = (central, np.stack([b.total_with_prior for b in budgets]), chi2[:, 1])
    errors.update(calibrated or {})
    per_error = {f"{figure}_{name}": value for name, (c, e, x) in errors.items()
                 for figure, value in error_figures(c, truths, e, groups, x).items()}
    return {
        "n_densities": stats.n_groups, "n_rows": stats.n_rows, **with_prior, **per_error,
        "coverage": stats.coverage, "coverage_err": stats.coverage_err,
        "mean_abs_pull": stats.mean_abs_pull, "r_bv": stats.r_bv, "r_bv_err": stats.r_bv_err,
        "verdict": stats.verdict,
        "coverage_stat_rep": closure.coverage(central, truths, stat_rep, groups)[0],
        "median_rel_error": median_relative_error(central, truths),
        "median_sys_share": float(np.median(sys2 / total**2)),
        "common_bias_share_of_misses": float(common[missed].mean()) if missed.any() else 0.0,
        "complete": bool(np.all(np.isfinite(total))), **chi2_figures(chi2[:, 0]),
        "_coverage_vs_energy": stats.coverage_vs_energy,
        "_per_row": closure.covered(central, truths, total).mean(axis=1),
        "_pulls": bud.pulls(central, truths, total), "_central": central, "_total": total,
    }


def judge_audience(cfg, inputs: dict, device) -> tuple[dict, dict]:
    """({(family, σ, level): metrics}, {(family, σ, level): [[Budget]]}) of one audience."""
    metrics, budgets = {}, {}
    for sigma_gev in cfg["sigmas_gev"]:
        for family, (densities, _, samples) in inputs.items():
            predictions = predict_family(cfg, samples, sigma_gev, device)
            quantiles = predictions.pop(INTERVAL_RUN, None)
            cal = calibration_of(cfg, sigma_gev)
            n_meas = samples[LEVELS[0]].shape[1]
            truths = np.repeat(np.stack([d.truth[sigma_gev] for d in densities]), n_meas, axis=0)
            groups = np.repeat(np.arange(len(densities)), n_meas)
            for level in LEVELS:
                b, chi2 = budgets_of(predictions, level, truths[::n_meas], unmeasured_systematics(cfg))
                rows = [x for row in b for x in row]
                calibrated = (calibrated_rows(cfg, cal, None if quantiles is None else quantiles[level], rows, truths)
                              if cal is not None else None)
                budgets[(family, sigma_gev, level)] = b
                metrics[(family, sigma_gev, level)] = dict(
                    family_metrics(truths, rows, groups, chi2, calibrated),
                    held_out_from_calibration=validation.held_out_from_calibration(cfg, family))
    return metrics, budgets


def over_audiences(per_audience: dict) -> pd.DataFrame:
    """Mean and spread (std, ddof = 1; NaN for one audience) over the audiences of every figure."""
    rows = []
    keys = next(iter(per_audience.values())).keys()
    for key in keys:
        ms = [per_audience[seed][key] for seed in per_audience]
        row = dict(zip(("family", "sigma_gev", "level"), key), n_audiences=len(ms))
        per_error = tuple(f"{f}_{e}" for e in ERRORS for f in ERROR_FIGURES if f"{f}_{e}" in ms[0])
        for name in HEADLINE + tuple(n for n in PRIOR_HEADLINE if n in ms[0]) + per_error:
            values = np.array([m[name] for m in ms], dtype=float)
            row[f"{name}_mean"] = float(values.mean())
            row[f"{name}_spread"] = float(values.std(ddof=1)) if len(values) > 1 else np.nan
        verdicts = pd.Series([m["verdict"] for m in ms]).value_counts()
        row["verdicts"] = "; ".join(f"{c}/{len(ms)}: {v}" if len(ms) > 1 else v for v, c in verdicts.items())
        row["complete"] = all(m["complete"] for m in ms)
        row["held_out_from_calibration"] = ms[0]["held_out_from_calibration"]
        rows.append(row)
    return pd.DataFrame(rows)


# --- outputs ------------------------------------------------------------------------------------------
def _cell(summary_row, name: str, percent: bool, digits: int, stat: str | None = None) -> str:
    """'62 ± 3 %' (one audience: ± its statistical error) or '62 ± 5 [± 3] %' (several: ± the spread
    over audiences [± the typical statistical error within one])."""
    scale, unit = (100, " %") if percent else (1, "")
    mean, spread = summary_row[f"{name}_mean"] * scale, summary_row[f"{name}_spread"] * scale
    err = summary_row[f"{stat}_mean"] * scale if stat else np.nan
    if summary_row["n_audiences"] == 1:
        return f"{mean:.{digits}f}" + (f" ± {err:.{digits}f}" if stat else "") + unit
    return f"{mean:.{digits}f} ± {spread:.{digits}f}" + (f" [± {err:.{digits}f}]" if stat else "") + unit


def markdown(cfg, summary: pd.DataFrame, table: pd.DataFrame, seeds, n_meas: int) -> str:
    k = len(seeds)
    prior = "coverage_with_prior_mean" in summary.columns     # the audience has Nref_prior
    how = ("± the statistical error (spread over densities)" if k == 1 else
           f"mean ± spread over {k} audiences (seeds {', '.join(map(str, seeds))}) [± the typical "
           "statistical error within one audience]")
    lines = [f"Preset `{cfg.preset}`{' ' + ' '.join('--set ' + o for o in cfg.overrides) if cfg.overrides else ''}: "
             f"{len(cfg['ensembles'])} ensembles x {cfg['n_replicas']} replicas, N_boot = {cfg['n_boot']}; "
             f"{int(table['n_densities'].iloc[0])} densities per family x {n_meas} measurements each. "
             f"Level 1: each density measured once per repetition, samples around the measurement (method §8); "
             f"level 0: samples around the exact correlator, a diagnostic. Honest errors: coverage "
             f"{100 * closure.HONEST_COVERAGE:.0f}%, mean |pull| {closure.HONEST_MEAN_ABS_PULL:.2f}, R_bv 1; "
             f"χ² of ρ̄ - truth with the result's covariance over its k eigen-directions above "
             f"{cv.EIGENVALUE_CUT:g} of the largest: χ²/k ≈ 1 and p < 5 % in 5 % of the rows. "
             f"Figures: {how}.", "",
             "| family | σ | coverage of σ_tot, level 1 | mean \\|pull\\| | R_bv | level 0: coverage, R_bv "
             "| level 1, σ_stat⊕σ_rep only | median rel. error | misses common to all ensembles "
             "| χ²/k with the covariance, share p < 5 % (level 1) | verdict (level 1) |"
             + (" σ_tot,prior (level 1): coverage, mean \\|pull\\|, R_bv, χ²/k |" if prior else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if prior else "")]
    one = summary[summary["level"] == 1].set_index(["family", "sigma_gev"])
    zero = summary[summary["level"] == 0].set_index(["family", "sigma_gev"])
    for key, r in one.iterrows():
        z = zero.loc[key]
        flag = "" if r["complete"] else " (σ_tot incomplete)"
        with_prior = (f" {_cell(r, 'coverage_with_prior', True, 0, 'coverage_with_prior_err')}, "
                      f"{_cell(r, 'mean_abs_pull_with_prior', False, 2)}, "
                      f"{_cell(r, 'r_bv_with_prior', False, 2, 'r_bv_with_prior_err')}, "
                      f"{_cell(r, 'chi2_per_dof_with_prior', False, 1)} |") if prior else ""
        lines.append(f"| {key[0]} | {key[1]} | {_cell(r, 'coverage', True, 0, 'coverage_err')}{flag} "
                     f"| {_cell(r, 'mean_abs_pull', False, 2)} | {_cell(r, 'r_bv', False, 2, 'r_bv_err')} "
                     f"| {_cell(z, 'coverage', True, 0)}, {_cell(z, 'r_bv', False, 2)} "
                     f"| {_cell(r, 'coverage_stat_rep', True, 0)} | {_cell(r, 'median_rel_error', True, 1)} "
                     f"| {_cell(r, 'common_bias_share_of_misses', True, 0)} "
                     f"| {_cell(r, 'chi2_per_dof', False, 1)}, {_cell(r, 'chi2_p_below_5pct', True, 0)} "
                     f"| {r['verdicts']} |{with_prior}")
    lines += calibrated_table(cfg, one)
    if k > 1:
        lines += ["", "Per audience (level 1):", "",
                  "| seed | family | σ | coverage of σ_tot | mean \\|pull\\| | R_bv | level-0 coverage |",
                  "|---|---|---|---|---|---|---|"]
        by = table.set_index(["audience_seed", "family", "sigma_gev", "level"])
        for (seed, family, sigma_gev, level), r in by.iterrows():
            if level == 1:
                z = by.loc[(seed, family, sigma_gev, 0)]
                lines.append(f"| {seed} | {family} | {sigma_gev} | {100 * r['coverage']:.0f} ± "
                             f"{100 * r['coverage_err']:.0f} % | {r['mean_abs_pull']:.2f} | {r['r_bv']:.2f} ± "
                             f"{r['r_bv_err']:.2f} | {100 * z['coverage']:.0f} % |")
    return "\n".join(lines) + "\n"


def calibrated_table(cfg, one: pd.DataFrame) -> list[str]:
    """Every error side by side (level 1): coverage, mean |pull|, R_bv, CRPS, sharpness, χ²/k; a note
    when the audience has no calibration."""
    errors = [e for e in ERRORS if f"coverage_{e}_mean" in one.columns]
    if "total_calibrated" not in errors:
        return ["", "No calibrated figures: the audience has no calibration file (run calibrate_sigma.py)."]
    centre = cfg["calibrated_centre"]
    lines = ["", f"Every error side by side (level 1). total_calibrated: the recommended centre ({centre}); "
             "total_calibrated_<centre>: each centre; total_scaled = S·σ_tot. The calibrated errors "
             f"promise {calibration.GUARANTEES['calibrated']}: 'held out' says whether the family lies outside "
             f"that space (calibration_space = {cfg['calibration_space']}). CRPS of N(c, σ²) (lower is better), "
             "sharpness = median σ / max|truth|; centre's rel. error = median |c − truth|/|truth| of the error's "
             "centre.", "",
             "| family | σ | held out | error | coverage | mean \\|pull\\| | R_bv | CRPS | sharpness | centre's rel. "
             "error | χ²/k |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in one.iterrows():
        held = {True: "yes", False: "no"}.get(r["held_out_from_calibration"], "-")
        for e in errors:
            lines.append(f"| {key[0]} | {key[1]} | {held} | {e} "
                         f"| {_cell(r, f'coverage_{e}', True, 0, f'coverage_err_{e}')} "
                         f"| {_cell(r, f'mean_abs_pull_{e}', False, 2)} | {_cell(r, f'r_bv_{e}', False, 2)} "
                         f"| {_cell(r, f'crps_{e}', False, 4)} | {_cell(r, f'sharpness_{e}', False, 3)} "
                         f"| {_cell(r, f'centre_rel_error_{e}', True, 1)} "
                         f"| {_cell(r, f'chi2_per_dof_{e}', False, 1)} |")
    return lines


def write_outputs(cfg, audiences, inputs, results, out_dir: Path, timings: dict) -> list[Path]:
    """coverage.csv, coverage_summary.csv, coverage.md, densities.csv, validation.hdf5 (atomically)."""
    seeds = [int(a["seed"]) for a in audiences]
    n_meas = next(iter(inputs.values()))[1].shape[1]
    table = pd.DataFrame([{"audience_seed": seed, "family": f, "sigma_gev": s, "level": level,
                           **{k: v for k, v in m.items() if not k.startswith("_")}}
                          for seed, (metrics, _) in results.items() for (f, s, level), m in metrics.items()])
    summary = over_audiences({seed: metrics for seed, (metrics, _) in results.items()})
    written = []
    for name, frame in (("coverage.csv", table), ("coverage_summary.csv", summary)):
        with atomic_output(out_dir / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        written.append(out_dir / name)
    with atomic_output(out_dir / "coverage.md") as tmp:
        tmp.write_text(markdown(cfg, summary, table, seeds, n_meas))
    written.append(out_dir / "coverage.md")

    per_row = []
    for seed, (metrics, _) in results.items():
        for (family, sigma_gev, level), m in metrics.items():
            densities = inputs[family][0]
            pull_rows = m["_pulls"].reshape(len(densities), n_meas, -1)
            for d in densities:
                params = dict(d.parameters)
                params.pop("coefficients", None)
                for j in range(n_meas):
                    per_row.append({"audience_seed": seed, "family": family, "index": d.index, "measurement": j,
                                    "level": level, "sigma_gev": sigma_gev,
                                    "coverage": m["_per_row"][d.index * n_meas + j],
                                    "mean_abs_pull": float(np.mean(np.abs(pull_rows[d.index, j]))),
                                    "parameters": json.dumps(params)})
    with atomic_output(out_dir / "densities.csv") as tmp:
        pd.DataFrame(per_row).to_csv(tmp, index=False, float_format="%.6g")
    written.append(out_dir / "densities.csv")

    path = out_dir / "validation.hdf5"
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5["energies"] = cfg.energies
            for family, (densities, measured, _) in inputs.items():
                g = h5.create_group(family)
                g["correlators"] = np.stack([d.correlator for d in densities])
                g["measured_correlators"] = measured
                g.attrs["parameters"] = json.dumps([d.parameters for d in densities])
                for sigma_gev in cfg["sigmas_gev"]:
                    g[f"sigma_{sigma_gev}/truth"] = np.stack([d.truth[sigma_gev] for d in densities])
            for seed, (_, budgets) in results.items():
                for (family, sigma_gev, level), rows in budgets.items():
                    g = h5.create_group(f"audience_seed_{seed}/{family}/sigma_{sigma_gev}/level_{level}")
                    g.attrs["closure_level"] = level
                    prior = ("sys_prior", "total_with_prior") if rows[0][0].has_prior else ()
                    for c in ("central", *bud.COMPONENTS, "total", *prior):
                        g[c] = np.array([[b.component(c) for b in row] for row in rows])
            write_attrs(h5, provenance(cfg, what="validate_coverage", timings=json.dumps(timings),
                                       closure_levels=json.dumps(list(LEVELS)), measurements=n_meas,
                                       audience_seeds=json.dumps(seeds),
                                       audience_roots=json.dumps([str(a.root) for a in audiences]),
                                       table=table.to_json(orient="records")))
    written.append(path)
    return written


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def _pooled(results, key, field):
    return np.concatenate([metrics[key][field] for metrics, _ in results.values()])


def plot_pulls(cfg, results, families, path: Path) -> None:
    """Pull histograms per family and σ: level 1 (filled) against level 0 (outline) and N(0, 1)."""
    sigmas = cfg["sigmas_gev"]
    fig, axes = plt.subplots(len(sigmas), len(families), figsize=(3.2 * len(families), 2.9 * len(sigmas)),
                             sharex=True, squeeze=False)
    bins, x = np.linspace(-5, 5, 41), np.linspace(-5, 5, 201)
    for i, s in enumerate(sigmas):
        for j, f in enumerate(families):
            ax, text = axes[i, j], []
            for level, style in ((1, dict(color="tab:blue", alpha=0.7)),
                                 (0, dict(histtype="step", color="tab:orange", lw=1.2))):
                pulls = _pooled(results, (f, s, level), "_pulls").ravel()
                clipped = np.clip(pulls[np.isfinite(pulls)], -4.99, 4.99)
                ax.hist(clipped, bins=bins, density=True, label=closure.level_label(level), **style)
                text.append(f"L{level}: {100 * np.mean(np.abs(pulls) <= 1):.0f}%")
            ax.plot(x, np.exp(-x**2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
            ax.set_title(f"{f}, σ={s}\ncoverage " + ", ".join(text), fontsize=8)
            if i == len(sigmas) - 1:
                ax.set_xlabel(r"pull $(\bar\rho - \rho_{\rm true})/\sigma_{\rm tot}$ (clipped to ±5)", fontsize=7)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"pulls, preset {cfg.preset}: all densities x measurements x energies x "
                 f"{len(results)} audience(s)", fontsize=9)
    _save(fig, path)


def _uniform_histograms(ax, series: list, title: str, xlabel: str) -> None:
    """Step histograms on [0, 1] of [(label, values)] against the uniform density (dashed), which
    p-values and PIT values follow when the errors are honest."""
    bins = np.linspace(0, 1, 11)
    for n, (label, values) in enumerate(series):
        values = values[np.isfinite(values)]
        if len(values):
            ax.hist(values, bins=bins, density=True, histtype="step", lw=1.3, color=f"C{n}", label=label)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)


def plot_chi2(cfg, results, families, path: Path) -> None:
    """Level 1: the histogram of p = P(χ²(k) > χ²) per family and σ, over densities, measurements
    and audiences; uniform when the result and its covariance are honest, piled up at 0 when the
    errors or their correlations are too small, at 1 when too large."""
    sigmas = cfg["sigmas_gev"]
    fig, axes = plt.subplots(1, len(sigmas), figsize=(5.8 * len(sigmas), 3.9), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], sigmas):
        _uniform_histograms(ax, [(f, _pooled(results, (f, s, 1), "_chi2_p")) for f in families], f"σ = {s}",
                            r"p-value of $\chi^2$ with the result's covariance (level 1)")
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"correlated closure test, preset {cfg.preset}: eigenvalue cut {cv.EIGENVALUE_CUT:g} of "
                 "the largest; honest: uniform (dashed)", fontsize=9)
    _save(fig, path)


def plot_pit(cfg, results, families, path: Path) -> None:
    """Level 1: the PIT histogram Φ((truth − c)/σ) of every error per family (first σ), over densities,
    measurements, energies and audiences; uniform (dashed) when the error is calibrated."""
    s = cfg["sigmas_gev"][0]
    errors = [e for e in ERRORS if f"_pit_{e}" in next(iter(results.values()))[0][(families[0], s, 1)]]
    fig, axes = plt.subplots(1, len(families), figsize=(3.4 * len(families), 3.0), sharey=True, squeeze=False)
    for ax, f in zip(axes[0], families):
        _uniform_histograms(ax, [(e, _pooled(results, (f, s, 1), f"_pit_{e}")) for e in errors], f"{f}, σ = {s}",
                            "PIT")
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"PIT histograms (level 1), preset {cfg.preset}: uniform when calibrated, piled at 0 and 1 "
                 "when too small", fontsize=9)
    _save(fig, path)


# the reliability diagram: coverage by deciles of the predicted relative width, on held-out densities
RELIABILITY_ERRORS = ("total", "total_calibrated")
N_DECILES = 10


def held_out_families(cfg, families) -> list:
    """The families of densities no calibration item resembles: held out from the calibration space,
    and the calibration space's own held-out densities (where its promise is made)."""
    return [f for f in families if f == validation.CALIBRATION_FAMILY or validation.held_out_from_calibration(cfg, f)]


def reliability(results, families, sigma_gev, error: str) -> pd.DataFrame:
    """Coverage of ``error`` in deciles of its predicted relative width σ / max|c|, over the rows and
    energies of ``families`` and the audiences (level 1): decile, its width range, coverage, count."""
    keys = [(f, sigma_gev, 1) for f in families]
    if not all(f"_covered_{error}" in next(iter(results.values()))[0][k] for k in keys):
        return pd.DataFrame()
    width = np.concatenate([_pooled(results, k, f"_relative_width_{error}") for k in keys])
    covered = np.concatenate([_pooled(results, k, f"_covered_{error}") for k in keys])
    edges = np.quantile(width, np.linspace(0, 1, N_DECILES + 1))
    which = np.clip(np.searchsorted(edges, width, side="right") - 1, 0, N_DECILES - 1)
    return pd.DataFrame([{"sigma_gev": sigma_gev, "error": error, "decile": j + 1, "width_from": edges[j],
                          "width_to": edges[j + 1], "coverage": covered[which == j].mean(),
                          "n": int(np.sum(which == j))} for j in range(N_DECILES)])


def plot_reliability(cfg, results, families, path: Path) -> pd.DataFrame:
    """The reliability diagram of σ_tot and the recommended calibrated error on the held-out densities
    (held_out_families), one panel per σ, with the band 68 ± 8 %; returns its table."""
    held = held_out_families(cfg, families)
    tables = [reliability(results, held, s, e) for s in cfg["sigmas_gev"] for e in RELIABILITY_ERRORS]
    table = pd.concat([t for t in tables if len(t)], ignore_index=True) if any(len(t) for t in tables) else None
    sigmas = cfg["sigmas_gev"]
    fig, axes = plt.subplots(1, len(sigmas), figsize=(5.2 * len(sigmas), 3.8), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], sigmas):
        ax.axhspan(closure.HONEST_COVERAGE - 0.08, closure.HONEST_COVERAGE + 0.08, color="0.88", zorder=0,
                   label="68 ± 8 %")
        ax.axhline(closure.HONEST_COVERAGE, color="k", lw=0.8)
        for n, e in enumerate(RELIABILITY_ERRORS):
            if table is not None and ((table.sigma_gev == s) & (table.error == e)).any():
                t = table[(table.sigma_gev == s) & (table.error == e)]
                ax.plot(t.decile, t.coverage, "o-", color=f"C{n}", lw=1.3, label=e)
        ax.set(xlabel="decile of the predicted relative width σ / max|ρ̄|", ylim=(0, 1.02),
               title=f"σ = {s}: {', '.join(held)}", xticks=range(1, N_DECILES + 1))
        ax.title.set_fontsize(8)
    axes[0, 0].set_ylabel("coverage")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"reliability on held-out densities (level 1), preset {cfg.preset}, {len(results)} audience(s)",
                 fontsize=9)
    _save(fig, path)
    return table


def plot_coverage_vs_energy(cfg, results, families, path: Path) -> None:
    """Coverage of σ_tot per energy, over a family's densities and measurements (and audiences):
    level 1 solid with its statistical band, level 0 dashed."""
    fig, axes = plt.subplots(1, len(cfg["sigmas_gev"]), figsize=(5.8 * len(cfg["sigmas_gev"]), 3.9),
                             sharey=True, squeeze=False)
    n_densities = next(iter(results.values()))[0][(families[0], cfg["sigmas_gev"][0], 1)]["n_densities"]
    band = np.sqrt(closure.HONEST_COVERAGE * (1 - closure.HONEST_COVERAGE) / n_densities)
    for ax, s in zip(axes[0], cfg["sigmas_gev"]):
        for n, f in enumerate(families):
            for level, ls in ((1, "-"), (0, "--")):
                per = np.stack([metrics[(f, s, level)]["_coverage_vs_energy"] for metrics, _ in results.values()])
                ax.plot(cfg.energies, per.mean(axis=0), ls, color=f"C{n}", lw=1.2 if level else 0.9,
                        label=f if level == 1 else None)
        ax.axhline(closure.HONEST_COVERAGE, color="k", lw=0.8)
        ax.axhspan(closure.HONEST_COVERAGE - band, closure.HONEST_COVERAGE + band, color="0.85", zorder=0,
                   label=f"68% ± one binomial s.e. ({n_densities} densities)")
        ax.set(xlabel="E (lattice units)", title=f"σ = {s}: level 1 solid, level 0 (diagnostic) dashed",
               ylim=(0, 1.02))
    axes[0, 0].set_ylabel(r"share with $|\bar\rho - \rho_{\rm true}| \leq \sigma_{\rm tot}$")
    axes[0, 0].legend(fontsize=7)
    _save(fig, path)


def plot_examples(cfg, inputs, results, families, sigma_gev, path: Path) -> None:
    """Density 0, measurement 0 of each family, first audience: level 1 ± σ_tot, level 0 dashed."""
    fig, axes = plt.subplots(1, len(families), figsize=(3.4 * len(families), 3.0), squeeze=False)
    E = cfg.energies
    metrics = next(iter(results.values()))[0]
    for ax, f in zip(axes[0], families):
        m1, m0, d = metrics[(f, sigma_gev, 1)], metrics[(f, sigma_gev, 0)], inputs[f][0][0]
        c, t = m1["_central"][0], m1["_total"][0]
        ax.plot(E, d.truth[sigma_gev], "k-", lw=1.2, label="exact truth")
        ax.plot(E, c, color="tab:red", lw=1, label=r"audience, level 1 $\pm\sigma_{\rm tot}$")
        ax.fill_between(E, c - t, c + t, color="tab:red", alpha=0.25)
        ax.plot(E, m0["_central"][0], color="tab:orange", ls="--", lw=0.9, label="level 0 (diagnostic)")
        ax.set_title(f"{f} #0, measurement 0: coverage {100 * m1['_per_row'][0]:.0f}%", fontsize=8)
        ax.set_xlabel("E (lattice units)", fontsize=8)
    axes[0, 0].set_ylabel(rf"$\rho_\sigma(E)$, σ = {sigma_gev}", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    _save(fig, path)


# --- comparing studies made earlier ----------------------------------------------------------------
COMPARED_ERRORS = ("total", "total_with_prior", "total_calibrated")


def read_summary(root: Path) -> pd.DataFrame:
    """The coverage_summary.csv of a study written under ``root`` (an InputError if there is none)."""
    path = root / "results" / "validation" / "coverage_summary.csv"
    if not path.is_file():
        raise InputError(path, None, "missing: run validate_coverage.py with this --root first")
    return pd.read_csv(path)


def comparison(studies: dict[str, pd.DataFrame]) -> str:
    """The level-1 figures of several studies side by side (rows family × σ present in all): per
    study the median relative error of ρ̄, then for each error of COMPARED_ERRORS that every study
    has, its coverage (mean ± spread over the audiences), mean |pull| and CRPS."""
    level1 = {label: d[d["level"] == 1].set_index(["family", "sigma_gev"]) for label, d in studies.items()}
    keys = [k for k in next(iter(level1.values())).index if all(k in d.index for d in level1.values())]
    errors = [e for e in COMPARED_ERRORS if all(f"coverage_{e}_mean" in d.columns for d in level1.values())]
    head = ["family", "σ"]
    for label in level1:
        head += [f"{label}: median rel. error of ρ̄"] + [f"{label}: {e} coverage, \\|pull\\|, CRPS" for e in errors]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in keys:
        cells = [str(key[0]), str(key[1])]
        for d in level1.values():
            r = d.loc[key]
            cells.append(_cell(r, "median_rel_error", True, 1))
            cells += [f"{_cell(r, f'coverage_{e}', True, 0)}, {r[f'mean_abs_pull_{e}_mean']:.2f}, "
                      f"{r[f'crps_{e}_mean']:.4f}" for e in errors]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@main_guard
def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--n-per-family", type=int, default=30, help="densities per family (default 30)")
    parser.add_argument("--measurements", type=int, default=3,
                        help="level-1 measurements per density (default 3; at least 3 for the figures)")
    parser.add_argument("--audience-seeds", type=int, default=1,
                        help="audiences differing only in seed: seed, seed+1, ... (default 1)")
    parser.add_argument("--families", default=",".join(validation.FAMILIES),
                        help=f"comma-separated subset of {','.join(validation.FAMILIES)}")
    parser.add_argument("--no-train", action="store_true", help="stop if an audience is not trained yet")
    parser.add_argument("--compare", action="append", metavar="LABEL=ROOT",
                        help="only compare studies made earlier (repeatable): print their level-1 figures "
                             "side by side, read from ROOT/results/validation/coverage_summary.csv")
    args = parser.parse_args(argv)
    if args.compare:
        pairs = [c.split("=", 1) for c in args.compare]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError(f"--compare {args.compare}: expected LABEL=ROOT")
        print(comparison({label: read_summary(Path(root)) for label, root in pairs}))
        return 0
    start = time.perf_counter()
    cfg = config_from_args(args)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(validation.FAMILIES))
    if unknown:
        raise ConfigError(f"unknown families {unknown}; expected some of {validation.FAMILIES}")
    if args.measurements < 1 or args.n_per_family < 2:
        raise ConfigError(f"--measurements {args.measurements}, --n-per-family {args.n_per_family}: "
                          "expected at least 1 measurement and 2 densities (the errors need a spread)")
    audiences = audience_configs(cfg, args.audience_seeds)
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    timings = {}
    for audience in audiences:
        ensure_audience(audience, train=not args.no_train)
    timings["audience_s"] = time.perf_counter() - start

    t0 = time.perf_counter()
    print(f"drawing {args.n_per_family} densities per family, {args.measurements} measurements each, "
          f"{cfg['n_boot']} samples per measurement and level:")
    inputs = draw_inputs(cfg, families, args.n_per_family, args.measurements, noise)
    timings["densities_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    device = select_device()
    results = {}
    for audience in audiences:
        results[int(audience["seed"])] = judge_audience(audience, inputs, device)
        print(f"  audience seed {audience['seed']} judged ({time.perf_counter() - t0:.0f} s so far)")
    timings["prediction_and_budget_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start

    out_dir = cfg.path("results") / "validation"
    written = write_outputs(cfg, audiences, inputs, results, out_dir, timings)
    plot_pulls(cfg, results, families, out_dir / "pulls.png")
    plot_coverage_vs_energy(cfg, results, families, out_dir / "coverage_vs_energy.png")
    plot_chi2(cfg, results, families, out_dir / "chi2.png")
    plot_pit(cfg, results, families, out_dir / "pit.png")
    written += [out_dir / "pulls.png", out_dir / "coverage_vs_energy.png", out_dir / "chi2.png", out_dir / "pit.png"]
    table = plot_reliability(cfg, results, families, out_dir / "reliability.png")
    written.append(out_dir / "reliability.png")
    if table is not None:
        with atomic_output(out_dir / "reliability.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
        written.append(out_dir / "reliability.csv")
        for (s, e), t in table.groupby(["sigma_gev", "error"]):
            print(f"reliability, σ = {s}, {e}: coverage by decile of the predicted relative width "
                  f"{100 * t.coverage.min():.0f}-{100 * t.coverage.max():.0f} %, the furthest "
                  f"{100 * np.max(np.abs(t.coverage - closure.HONEST_COVERAGE)):.0f} points from 68 %")
    for s in cfg["sigmas_gev"]:
        plot_examples(cfg, inputs, results, families, s, out_dir / f"examples_sigma{s}.png")
        written.append(out_dir / f"examples_sigma{s}.png")
    for path in written:
        print(f"wrote {path}")
    print()
    print((out_dir / "coverage.md").read_text())
    for seed, (metrics, _) in results.items():
        for (f, s, level), m in metrics.items():
            if level == 1 and m["verdict"] != "honest":
                print(f"NOTE: audience seed {seed}, {f} at sigma={s} (level 1): {m['verdict']} -- coverage "
                      f"{100 * m['coverage']:.0f} ± {100 * m['coverage_err']:.0f}%, R_bv {m['r_bv']:.2f} ± "
                      f"{m['r_bv_err']:.2f}; with σ_stat⊕σ_rep alone the coverage would be "
                      f"{100 * m['coverage_stat_rep']:.0f}%")
    print(f"total wall time {time.perf_counter() - start:.0f} s (audiences {timings['audience_s']:.0f} s, "
          f"exact densities {timings['densities_s']:.0f} s, prediction and budgets "
          f"{timings['prediction_and_budget_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

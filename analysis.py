"""Stage 4: from prediction files to the result with its error budget (method §8-10).

For one input (a mock, or the user's data) and each σ: read every ensemble's prediction file
(prediction_files.load_predictions, which checks they predicted the same samples), compute the
budget (``budget.error_budget``), write it as ``results/{mock}_sigma{σ}_budget.csv``, ``.json`` and
``.hdf5`` (result_files.py: the method §10 columns, plus ``closure_level`` for a mock; the HDF5 also
the Δ_X and σ_ΔX, each ensemble's own values, the pulls, the provenance), draw the plots and summarise a mock per σ with
closure.py's
statistics: coverage (share of energies with |ρ̄ - truth| ≤ σ_tot), mean |pull| and R_bv -- of ONE
measurement, so the coverage is uncertain by about ±20 % (method §9; validate_coverage.py repeats it).
Outputs made from the same prediction files (their SHA-256) with the same settings are up to date
(the ``fingerprint`` attribute of the .hdf5): they are kept and reported, ``--force`` redoes them.

Provenance records what was used: the analysis' own settings (ANALYSIS_KEYS, and only the overrides
of those keys) and each prediction file's stored configuration (its N_boot, seed, closure level,
...: what the numbers came from).  A setting that shaped the prediction files and disagrees with
what they hold (e.g. ``--set n_boot=...`` given to the analysis alone) is refused, naming the file,
the key and both values: the analysis cannot change it, so it must not claim it.

With the prior systematic (method §8 "Beyond the paper", preset option ``prior_systematic``) the
audience has Nref_prior, and both files get two more columns after ``total``: ``sys_prior`` and
``total_with_prior`` (the HDF5 also ``delta_prior``, ``delta_error_prior``, ``pulls_with_prior``);
the result plot draws the wider σ_tot,prior band, the summary adds its mean |pull| and coverage.
σ_tot stays the headline.  Without the option the files are exactly as before (no such columns).

Plots (PNG, in results/; none with --no-plots, which removes those of an earlier result when it
rewrites the tables):
  {mock}_sigma{σ}_result.png     ρ̄ ± σ_tot (and ± σ_stat⊕σ_rep) against the truth
  {mock}_sigma{σ}_ensembles.png  the result against each reference ensemble Nref_X
  {mock}_sigma{σ}_budget.png     every component of σ_tot versus energy
  {mock}_sigma{σ}_pulls.png      pulls versus energy and their histogram (mocks only)
  {mock}_sigma{σ}_correlation.png  the correlation matrix of the result over the energies

Correlations (covariance.py): the budget files also hold the result's covariance over the energies
(statistical + replica + each systematic fully correlated with its sign; its diagonal is σ_tot²).
For the user's data (no truth) the result is also written as correlated objects of the users'
libraries, where they are installed (exports.py): ``{name}_sigma{σ}_result.gvar`` (gvar) and
``{name}_sigma{σ}_result.json.gz`` (pyerrors), and the analysis prints how to load them.
"""
from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import budget as bud
import calibration
import closure
import covariance as cv
import exports
from calibration_files import calibration_networks, check_networks, read_calibration
from cli import add_wait_lock_arg, main_guard, one_line, run_each, usable_cores
from config import add_common_args, config_from_args
from correlator_files import FORMATS
from figures import save_png, subplots
from io_utils import (
    InputError,
    UserError,
    check_writable,
    file_sha256,
    fingerprint,
    remove_stale_temporaries,
    task_lock,
)
from mocks import user_data_name
from prediction_files import PredictionSet, load_interval_predictions, load_predictions
from result_files import result_paths, up_to_date, write_results
from roles import PRIOR_SYSTEMATIC, REFERENCE, SYSTEMATICS
from tasks import unmeasured_systematics
from user_correlators import NamedCorrelator, correlator_names

# The settings the analysis itself uses: which ensembles and σ it reads, and 1/a for σ in lattice units.
ANALYSIS_KEYS = ("a_inv_gev", "calibrated_centre", "ensembles", "interval_networks", "prior_systematic", "sigmas_gev")
LABELS = {"stat": r"$\sigma_{\rm stat}$", "rep": r"$\sigma_{\rm rep}$", "sys_b": r"$\Sigma_b$",
          "sys_rho": r"$\Sigma_\rho$", "sys_n": r"$\Sigma_n$", "total": r"$\sigma_{\rm tot}$",
          "sys_prior": r"$\Sigma_{\rm prior}$", "total_with_prior": r"$\sigma_{\rm tot,prior}$",
          "total_calibrated": r"$\sigma_{\rm cal}$"}
CALIBRATED_LABEL = "calibrated (68 % over the calibration space)"


def analysis_settings(cfg) -> dict:
    """What the analysis itself used: the values of ANALYSIS_KEYS and the overrides of those keys
    (an override of another key changed nothing here; the prediction files record their own)."""
    used = [item for item in cfg.overrides if item.partition("=")[0].split(".")[0] in ANALYSIS_KEYS]
    return {"preset": cfg.preset, "overrides": used, "values": {key: cfg[key] for key in ANALYSIS_KEYS}}


# --- the calibrated result ------------------------------------------------------------------------
@dataclass
class Calibrated:
    """The calibrated result of one input and σ (calibration.py): the columns of the calibrated group
    {column: [N_E]} (result_files.COLUMN_GROUPS), the covariances of its errors and the calibration used."""
    centres: tuple            # the recommended centre (preset key calibrated_centre) first, then the others
    columns: dict
    covariances: dict         # total_calibrated (the recommended centre), total_calibrated_<each other centre>
    calibration: dict         # {file, sha256, centre}

    @property
    def centre(self) -> str:
        return self.centres[0]

    @property
    def central(self) -> np.ndarray:
        return self.columns["central_calibrated"]

    @property
    def total(self) -> np.ndarray:
        return self.columns["total_calibrated"]


def calibrated_result(cfg, s: PredictionSet, b: bud.Budget, calibrations: dict | None = None) -> Calibrated | None:
    """The calibrated result from the calibration file of σ (and, with interval networks, their
    prediction file); None (with a note) when a file is missing.  A calibration made with other
    networks than those on disk is refused (calibration_files.check_networks).
    ``calibrations``: {σ: (calibration, its SHA-256)} read and checked for an earlier input (kept there)."""
    path = cfg.calibration_file(s.sigma_gev)
    if not path.is_file():
        print(f"  NOTE: no calibrated result: {path} is missing (calibrate first: "
              f"{cfg.command('calibrate_sigma.py')})")
        return None
    calibrations = {} if calibrations is None else calibrations
    if s.sigma_gev not in calibrations:
        checked = read_calibration(cfg, s.sigma_gev)
        check_networks(cfg, checked, calibration_networks(cfg, s.sigma_gev))
        calibrations[s.sigma_gev] = checked, file_sha256(path)
    cal, sha256 = calibrations[s.sigma_gev]
    width = median = None
    if cfg["interval_networks"]:
        quantiles = load_interval_predictions(cfg, s)
        if quantiles is None:
            print("  NOTE: no calibrated result without the interval networks' predictions (rerun the prediction)")
            return None
        width, median = calibration.width_and_median(*quantiles)
    centres = calibration.result_centres(cfg)
    factors = {c: cal.factors[c] for c in centres}
    results = calibration.calibrated_results(factors, b, width, median)
    covariances = calibration.calibrated_covariances(results, factors, b)
    columns = {**results[centres[0]], "total_scaled": calibration.scaled_total(cal.S, b)}
    for other in centres[1:]:
        columns.update({f"{name}_{other}": values for name, values in results[other].items()})
    return Calibrated(centres, columns, {"total_calibrated": covariances[centres[0]],
                                         **{f"total_calibrated_{c}": covariances[c] for c in centres[1:]}},
                      {"file": str(path), "sha256": sha256, "centre": centres[0]})


# --- summaries --------------------------------------------------------------------------------
@dataclass
class Summary:
    """How the result compares with the truth at one σ (mocks only; closure.py's statistics)."""
    sigma_gev: float
    mean_abs_pull: float
    coverage: float
    r_bv: float
    closure_level: int
    complete: bool          # False: σ_tot lacks a component, the figures use the known ones only
    with_prior: closure.ClosureStatistics | None = None   # those of σ_tot,prior; None without it
    calibrated: closure.ClosureStatistics | None = None   # those of the calibrated result; None without it
    centre: str | None = None                             # its centre

    def line(self) -> str:
        note = "" if self.complete else "  (σ_tot incomplete: known components only, a lower bound)"
        prior = ""
        if self.with_prior is not None:
            prior = (f"; with the prior systematic (σ_tot,prior): mean |pull| = "
                     f"{self.with_prior.mean_abs_pull:.2f}, coverage = {100 * self.with_prior.coverage:.0f}%, "
                     f"R_bv = {self.with_prior.r_bv:.2f}")
        calibrated = ""
        if self.calibrated is not None:
            calibrated = (f"; calibrated ({self.centre} centre): mean |pull| = {self.calibrated.mean_abs_pull:.2f}, "
                          f"coverage = {100 * self.calibrated.coverage:.0f}%, R_bv = {self.calibrated.r_bv:.2f}")
        return (f"sigma = {self.sigma_gev} ({closure.level_label(self.closure_level)}): paper (σ_tot): "
                f"mean |pull| = {self.mean_abs_pull:.2f}, coverage = {100 * self.coverage:.0f}%, "
                f"R_bv = {self.r_bv:.2f}{note}{prior}{calibrated}")


def summarise(b: bud.Budget, s: PredictionSet, cal: Calibrated | None = None) -> Summary:
    complete = bool(np.all(np.isfinite(b.total)))
    total = b.total if complete else b.total_known
    stats = closure.closure_statistics(b.central, s.truth, total)
    with_prior = closure.closure_statistics(b.central, s.truth, b.total_with_prior) if b.has_prior else None
    calibrated = closure.closure_statistics(cal.central, s.truth, cal.total) if cal is not None else None
    return Summary(s.sigma_gev, stats.mean_abs_pull, stats.coverage, stats.r_bv, s.closure_level, complete,
                   with_prior, calibrated, cal.centre if cal is not None else None)


# --- plots ---------------------------------------------------------------------------------------
def plot_correlation(s: PredictionSet, covariances: dict, path) -> None:
    names = [e for e in ("total", "total_with_prior", "total_calibrated") if e in covariances]
    fig, axes = subplots(1, len(names), figsize=(5.2 * len(names), 4.4), squeeze=False, right=1.0, top=0.65,
                         wspace=0.9)
    extent = (s.energies[0], s.energies[-1], s.energies[-1], s.energies[0])
    for ax, name in zip(axes[0], names):
        image = ax.imshow(cv.correlation(covariances[name]), vmin=-1, vmax=1, cmap="RdBu_r", extent=extent)
        ax.set(xlabel="E (lattice units)", ylabel="E' (lattice units)", title=f"correlation of {LABELS[name]}")
    box = axes[0, -1].get_position()
    fig.colorbar(image, cax=fig.add_axes((box.x1 + 0.25 / fig.get_figwidth(), box.y0, 0.15 / fig.get_figwidth(),
                                          box.height)))
    fig.suptitle(f"{_name(s)}, σ = {s.sigma_gev}: the result's correlation between energies "
                 "(systematics fully correlated with their sign)", fontsize=9)
    save_png(fig, path)


def write_exports(cfg, s: PredictionSet, b: bud.Budget, covariances: dict, cal: Calibrated | None) -> list:
    """The result as gvar and pyerrors files (exports.py), for each package installed: ``total``
    (, ``total_with_prior``) around ρ̄_Nmax (, ``total_calibrated`` around its own centre); [] if a
    covariance is incomplete (a NaN component: said so)."""
    errors = {e: covariances[e] for e in ("total", "total_with_prior", "total_calibrated") if e in covariances}
    centres = {e: cal.central if e == "total_calibrated" else b.central for e in errors}
    if not all(np.all(np.isfinite(c)) for c in errors.values()):
        print("  no gvar/pyerrors export: the covariance is incomplete (a component of σ_tot is NaN)")
        return []
    written = []
    for package in exports.available():
        path = cfg.results_file(s.mock, s.sigma_gev, exports.SUFFIXES[package])
        if package == "gvar":
            exports.write_gvar(path, centres, errors)
        else:
            exports.write_pyerrors(path, centres, errors, f"{s.mock}, sigma = {s.sigma_gev}: rho_sigma(E) at "
                                   f"{len(s.energies)} energies {s.energies[0]:.5g}..{s.energies[-1]:.5g} (lattice "
                                   f"units); keys: {', '.join(errors)}; {cv.CONVENTION}")
        written.append(path)
    return written


def _name(s: PredictionSet) -> str:
    """The input's name in plot titles, with the closure level of a mock."""
    return s.mock if s.closure_level is None else f"{s.mock} ({closure.level_label(s.closure_level)})"


def _band_error(b: bud.Budget) -> tuple[np.ndarray, str]:
    """σ_tot, or the known components with a label saying so when σ_tot is incomplete."""
    if np.all(np.isfinite(b.total)):
        return b.total, LABELS["total"]
    return b.total_known, "known components only (σ_tot incomplete)"


def plot_result(s: PredictionSet, b: bud.Budget, path, cal: Calibrated | None = None) -> None:
    err, label = _band_error(b)
    inner = np.sqrt(b.stat**2 + np.nan_to_num(b.rep) ** 2)
    fig, ax = subplots(figsize=(7, 4.5))
    if cal is not None:       # beside the paper's result, never instead of it
        ax.fill_between(s.energies, cal.central - cal.total, cal.central + cal.total, facecolor="C2", alpha=0.2,
                        edgecolor="C2", linewidth=1.0, label=f"{CALIBRATED_LABEL}, {cal.centre} centre")
        ax.plot(s.energies, cal.central, color="C2", lw=1.0, ls=":")
    if b.has_prior:           # method §8 "Beyond the paper": the wider band, beside σ_tot
        prior = b.total_with_prior
        ax.fill_between(s.energies, b.central - prior, b.central + prior, facecolor="C1", alpha=0.2,
                        edgecolor="C1", linestyle="--", linewidth=1.0,
                        label=f"{REFERENCE} ± {LABELS['total_with_prior']} (with the prior systematic)")
    ax.fill_between(s.energies, b.central - err, b.central + err, color="C0", alpha=0.3,
                    label=f"{REFERENCE} ± {label}")
    ax.fill_between(s.energies, b.central - inner, b.central + inner, color="C0", alpha=0.5,
                    label=r"$\pm\sigma_{\rm stat}\oplus\sigma_{\rm rep}$")
    ax.plot(s.energies, b.central, color="C0", lw=1.5, label=r"result $\bar\rho_\sigma(E)$")
    if s.truth is not None:
        ax.plot(s.energies, s.truth, "k--", lw=1.5, label="truth")
    ax.set(xlabel="E (lattice units)", ylabel=r"$\rho_\sigma(E)$",
           title=f"{_name(s)}, σ = {s.sigma_gev}: result with its total error")
    ax.legend(fontsize=8)
    save_png(fig, path)


def plot_ensembles(s: PredictionSet, b: bud.Budget, path) -> None:
    err, label = _band_error(b)
    refs = list(SYSTEMATICS.items()) + ([PRIOR_SYSTEMATIC] if b.has_prior else [])
    fig, axes = subplots(1, len(refs), figsize=(5 * len(refs), 4), sharey=True, top=0.65, wspace=0.25)
    for ax, (name, ens) in zip(axes, refs):
        ax.fill_between(s.energies, b.central - err, b.central + err, color="C0", alpha=0.3,
                        label=f"{REFERENCE} ± {label}")
        ax.plot(s.energies, b.central, color="C0", lw=1.2)
        values = b.ensembles.get(ens)
        if values is None:
            ax.text(0.5, 0.5, f"{ens} missing:\n{LABELS[name]} not computable", transform=ax.transAxes,
                    ha="center", va="center", color="C3")
        else:
            own = np.sqrt(values["stat"] ** 2 + np.nan_to_num(values["rep"]) ** 2)
            ax.errorbar(s.energies, values["central"], own, fmt=".", ms=3, color="C1", elinewidth=0.8,
                        label=rf"{ens} $\pm\sigma_{{\rm stat}}\oplus\sigma_{{\rm rep}}$")
        if s.truth is not None:
            ax.plot(s.energies, s.truth, "k--", lw=1, label="truth")
        ax.set(xlabel="E (lattice units)", title=f"{REFERENCE} vs {ens} ({LABELS[name]})")
        ax.legend(fontsize=7)
    axes[0].set_ylabel(r"$\rho_\sigma(E)$")
    fig.suptitle(f"{_name(s)}, σ = {s.sigma_gev}: the result against each reference ensemble")
    save_png(fig, path)


def plot_budget(s: PredictionSet, b: bud.Budget, path) -> None:
    fig, ax = subplots(figsize=(7, 4.5))
    for i, name in enumerate(bud.COMPONENTS):
        values = b.component(name)
        missing = " (missing: NaN)" if np.all(np.isnan(values)) else ""
        ax.plot(s.energies, values, color=f"C{i}", lw=1.3, label=LABELS[name] + missing)
    err, label = _band_error(b)
    ax.plot(s.energies, err, "k", lw=2.2, label=label)
    if b.has_prior:
        ax.plot(s.energies, b.sys_prior, color="C6", lw=1.3, label=LABELS["sys_prior"])
        ax.plot(s.energies, b.total_with_prior, "k--", lw=1.8, label=LABELS["total_with_prior"])
    ax.set(xlabel="E (lattice units)", ylabel="error", ylim=(0, None),
           title=f"{_name(s)}, σ = {s.sigma_gev}: error budget by component")
    ax.legend(fontsize=8)
    save_png(fig, path)


def plot_pulls(s: PredictionSet, b: bud.Budget, path) -> None:
    err, label = _band_error(b)
    p = bud.pulls(b.central, s.truth, err)
    fig, (ax, hx) = subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]}, wspace=0.8)
    ax.axhspan(-1, 1, color="C2", alpha=0.2, label=r"$|{\rm pull}| \leq 1$")
    ax.axhline(0, color="k", lw=0.8)
    ax.plot(s.energies, p, "o-", ms=3, color="C0", label=r"$(\bar\rho - {\rm truth})/\sigma$")
    ax.set(xlabel="E (lattice units)", ylabel="pull",
           title=f"{_name(s)}, σ = {s.sigma_gev}: pulls in units of {label}")
    ax.legend(fontsize=8)
    hx.hist(np.clip(p, -3.99, 3.99), bins=np.linspace(-4, 4, 17), color="C0", alpha=0.7)
    hx.set(xlabel="pull (|pull| > 4 counted in the end bins)", ylabel="energies",
           title=f"coverage {100 * closure.coverage(b.central, s.truth, err)[0]:.0f}% (one measurement)")
    save_png(fig, path)


# the plots of one (input, σ), by the suffix of their file name; the pulls for a mock only
PLOTS = ("result", "ensembles", "budget", "correlation", "pulls")


# --- the whole analysis --------------------------------------------------------------------------
def input_warnings(s: PredictionSet) -> list[str]:
    """The warnings of the prediction files' input checks (prediction.input_check), each once."""
    out = []
    for check in (s.input_checks or {}).values():
        out += [w for w in (check or {}).get("warnings", []) if w not in out]
    return out


def analyze_sigma(cfg, mock: str, sigma_gev: float, force: bool = False, plots: bool = True,
                  calibrations: dict | None = None) -> tuple[Summary | None, list, list, list]:
    """Budget, files and plots (unless not ``plots``) of one (input, σ): (the summary (None without
    truth), the files written, the files kept because they are up to date, the warnings of the input
    checks).  ``calibrations``: see calibrated_result."""
    s = load_predictions(cfg, mock, sigma_gev)
    b = bud.error_budget(s.predictions, s.kind, unmeasured_systematics(cfg))
    covariances = cv.result_covariances(s.predictions, b, s.kind)
    alerts = input_warnings(s)
    b.warnings += alerts                                  # recorded in the budget files too
    for warning in b.warnings:
        print(f"  WARNING (σ = {sigma_gev}): {warning}")
    cal = calibrated_result(cfg, s, b, calibrations)
    if cal is not None:
        covariances.update(cal.covariances)
    summary = summarise(b, s, cal) if s.truth is not None else None
    drawn = {"result": lambda path: plot_result(s, b, path, cal),
             "ensembles": lambda path: plot_ensembles(s, b, path),
             "budget": lambda path: plot_budget(s, b, path),
             "correlation": lambda path: plot_correlation(s, covariances, path),
             "pulls": lambda path: plot_pulls(s, b, path)}
    drawable = [suffix for suffix in PLOTS if suffix != "pulls" or s.truth is not None]
    plots = {suffix: drawn[suffix] for suffix in drawable} if plots else {}
    pictures = [cfg.results_file(mock, sigma_gev, f"{suffix}.png") for suffix in plots]
    if s.truth is None and np.all(np.isfinite(covariances["total"])):   # user data's correlated exports
        pictures += [cfg.results_file(mock, sigma_gev, exports.SUFFIXES[p]) for p in exports.available()]
    made_of = fingerprint({"values": analysis_settings(cfg)["values"],
                           "prediction_files": {ens: file_sha256(path) if Path(path).is_file() else None
                                                for ens, path in s.files.items()},
                           "calibration": cal.calibration if cal is not None else None})
    if not force and up_to_date(cfg, mock, sigma_gev, made_of) and all(p.is_file() for p in pictures):
        return summary, [], result_paths(cfg, mock, sigma_gev) + pictures, alerts
    written = write_results(cfg, s, b, covariances, analysis_settings(cfg),
                            summary.line() if summary else "no truth (user data)", made_of,
                            cal.columns if cal is not None else None, cal.calibration if cal is not None else None)
    for suffix in drawable:
        path = cfg.results_file(mock, sigma_gev, f"{suffix}.png")
        if suffix in plots:
            plots[suffix](path)
            written.append(path)
        elif path.is_file():             # an earlier result's picture: it would contradict the tables
            path.unlink()
            print(f"  removed {path} (a plot of the earlier result; --no-plots draws none)")
    if s.truth is None:
        written += write_exports(cfg, s, b, covariances, cal)
    return summary, written, [], alerts


def analyze(cfg, mock: str, force: bool = False, wait_lock: bool = False, plots: bool = True,
            calibrations: dict | None = None) -> list[Summary]:
    """Analyse every σ of the preset for one input; prints what it wrote and the summary.

    One process analyses an input (cfg.analysis_lock; another stops with io_utils.TaskLocked, or
    with ``wait_lock`` waits); holding the lock it first removes the temporaries of its result
    files and plots that a killed run left.  ``plots``: draw them (--no-plots: not);
    ``calibrations``: the calibrations read for earlier inputs (calibrated_result)."""
    outputs = [path for sigma_gev in cfg["sigmas_gev"] for path in result_paths(cfg, mock, sigma_gev)
               + [cfg.results_file(mock, sigma_gev, f"{suffix}.png") for suffix in PLOTS]
               + [cfg.results_file(mock, sigma_gev, suffix) for suffix in exports.SUFFIXES.values()]]
    with task_lock(cfg.analysis_lock(mock), f"the analysis of {mock}", wait_lock):
        stale = remove_stale_temporaries(outputs)
        if stale:
            print(f"removed {len(stale)} temporary file(s) of a killed analysis: "
                  f"{', '.join(p.name for p in stale)}")
        return _analyze_sigmas(cfg, mock, force, plots, calibrations)


def _analyze_sigmas(cfg, mock: str, force: bool, plots: bool, calibrations: dict | None) -> list[Summary]:
    """analyze's work, under its lock."""
    summaries, failed, alerts = [], [], []
    for sigma_gev in cfg["sigmas_gev"]:
        print(f"{mock}, sigma = {sigma_gev}:")
        try:
            summary, written, kept, warnings = analyze_sigma(cfg, mock, sigma_gev, force, plots, calibrations)
        except (InputError, ValueError) as err:     # bad input: the other σ are still analysed
            print("  not analysed: the error is reported at the end (stderr)")
            failed.append((sigma_gev, err))
            continue
        for path in written:
            print(f"  wrote {path}")
        if kept:
            print(f"  up to date: {', '.join(p.name for p in kept)} (same prediction files and settings; "
                  "--force redoes them)")
        if summary is not None:
            summaries.append(summary)
        alerts += [w for w in warnings if w not in alerts]
    print(f"\nSummary for {mock}:")
    for warning in alerts:
        print(f"  WARNING: {warning}")
    for summary in summaries:
        print("  " + summary.line())
    if not summaries and not failed:
        print("  (no truth for user data: see the budget tables and plots)")
        for package in exports.available():
            print(f"  correlated result for {package}: results/{mock}_sigma<σ>_{exports.SUFFIXES[package]}; "
                  f"load it with {exports.HOW_TO_LOAD[package]} (error = 'total', 'total_with_prior' or "
                  "'total_calibrated', where present)")
    if failed:
        raise AnalysisFailed(mock, failed)
    return summaries


class AnalysisFailed(UserError):
    """Bad input at one σ or more of an input, each analysed as far as it goes: one line naming
    each failed σ and its error (cli.main_guard: stderr, exit status 2)."""

    def __init__(self, mock: str, failed: list):
        self.failed = failed
        super().__init__(f"{mock}: analysis failed for sigma = {[sigma for sigma, _ in failed]}: "
                         + "; ".join(f"sigma = {sigma}: {one_line(err)}" for sigma, err in failed))


@main_guard
def main(description: str, mock: str | None = None, argv=None) -> int:
    """The command line of the analyze_*.py scripts: a validation mock, or user data: the correlator
    files given to predict_on_user_data.py (their correlators' names derived as it derives them,
    user_correlators.correlator_names) or the ``--name`` of one.  Several are analysed each as a
    call for it alone, ``--jobs`` at once (cli.run_each); each process reads the calibrations once."""
    parser = add_common_args(argparse.ArgumentParser(description=description))
    if mock is None:
        parser.add_argument("inputs", nargs="*", metavar="FILE",
                            help="the correlator files given to predict_on_user_data.py")
        parser.add_argument("--name", type=user_data_name,
                            help="the --name given to predict_on_user_data.py (a single correlator's name, or "
                                 "the prefix of several); without FILE, the name of the correlator to analyse")
        parser.add_argument("--format", choices=FORMATS, help="input format (default: detected)")
        parser.add_argument("--tag", help="the --tag given to predict_on_user_data.py")
        parser.add_argument("--jobs", type=int, default=usable_cores(),
                            help="correlators analysed at once, one process each (default: the cores usable, "
                                 f"here {usable_cores()})")
    parser.add_argument("--no-plots", action="store_true", help="write the tables and files, no plots")
    parser.add_argument("--force", action="store_true",
                        help="redo result files that are up to date (same prediction files and settings)")
    add_wait_lock_arg(parser, "analyses this input")
    args = parser.parse_args(argv)
    if mock is None and not args.inputs and args.name is None:
        parser.error("give the correlator files given to predict_on_user_data.py, or --name NAME")
    if mock is None and args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected a positive integer")
    cfg = config_from_args(args)
    check_writable(cfg.path("results"), "result tables and plots")
    if mock is not None:
        analyze(cfg, mock, args.force, args.wait_lock, not args.no_plots)
        return 0
    named = (correlator_names(args.inputs, args.name, args.format, args.tag) if args.inputs
             else [NamedCorrelator(args.name, "")])
    calibrations = {}

    def analyze_one(correlator: NamedCorrelator) -> int:
        correlator.read()                  # a file that could not be read: its error
        analyze(cfg, correlator.name, args.force, args.wait_lock, not args.no_plots, calibrations)
        return 0
    return run_each([(c.label, functools.partial(analyze_one, c)) for c in named], args.jobs)

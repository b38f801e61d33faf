"""HLT cross-check: the audience against the Hansen-Lupo-Tantalo method (package ``lsdensities``)
on exactly the same bootstrap samples, for the two validation mocks (issues 6 and 9, method §8-9).

    pip install -r requirements-hlt.txt          # lsdensities: optional, not needed by the pipeline
    python benchmarks/compare_hlt.py --preset demo [--root DIR] [--energy-stride 2] [--workers 2]

Needs the mocks' prediction files (python run_pipeline.py, or predict_on_O3_mock_sigma.py and
predict_on_delta_tanh.py).  For each mock and σ it reads the samples every ensemble predicted
(``input_samples``, checked identical across ensembles by prediction_files.load_predictions): by default
a level-1 closure test, the mock measured once and the samples drawn around that measurement
(closure.py; the files' ``closure_level`` is carried into every output here, and a level-0
diagnostic is labelled as such).  It computes the audience's result and σ_tot with
budget.error_budget -- and every other error the audience has, as analysis.py computes them:
σ_tot,prior with the prior systematic (Nref_prior; preset key prior_systematic), and, with interval
networks (interval_networks) and the calibration file of σ (calibrate_sigma.py,
calibration/calibration_sigma{100σ}.h5; one made with other networks is refused), the scaled baseline
S·σ_tot and the calibrated results of both centres (analysis.calibrated_result: the paper centre
ρ̄_Nmax, and the interval networks' median from their own prediction file of the mock, run
Nmax_interval) -- and runs lsdensities' InverseProblemWrapper
(its λ scan, plateau search and systematic error from λ -> kfactor·λ, with lsdensities' own
example settings -- 8 compatible steps within 0.3 σ, kfactor 0.1, A/A0 < 0.1 -- but one α = 0 for
speed and λ scanned from 0.1 down to 1e-10, where these data put the plateau) on the same samples at the same energies
(every
``--energy-stride``-th energy of the grid) and σ.

HLT and the kernels.  lsdensities knows the bases e^{-tω} (EXP, our ``laplace``) and
e^{-tω} + e^{-(T-t)ω} (COSH, our ``periodic``), with the Gaussian target G_σ(E - ω) normalised on
the real line (its FULLNORMGAUSS, the G_σ of method §1).  Our default kernel ``rratio`` is
ω²/(12π²) times the periodic one, so Σ_t g_t b_t(ω) ≈ G_σ(E - ω) is the COSH problem with the
target w(ω) G_σ(E - ω), w = b_periodic / b_rratio = 12π²/ω².  lsdensities has no switch for a
weighted target, so for ``rratio`` the two target integrals it needs are supplied to it
(``target_integrals``): f_t(E) = ∫_{E0}^∞ e^{αω} b_t(ω) w(ω) G_σ(E - ω) dω and
A0(E) = ∫_{E0}^∞ e^{αω} w(ω)² G_σ(E - ω)² dω, by adaptive quadrature (float64, relative 1e-12);
everything else (the basis' S matrix in multiple precision, the λ scan, the errors) is
lsdensities' own.  With w = 1 these quadratures reproduce lsdensities' closed forms
(tests/test_validation.py); with the rratio weight, HLT results computed with f_t from mpmath's
quadrature at 51 digits agree with the float64 ones to 6 digits for λ from 1e-3 down to 1e-9
(checked on the O3 mock at E = 1.8, σ = 0.44).  E0, the lower end of HLT's A functional (the energy below which ρ is
assumed to vanish), is the training space's E0_min: the same prior knowledge the audience has.
For every kernel lsdensities' target integrals are memoised (it recomputes each t_max times per λ).

Writes results/hlt/compare_hlt.csv (per mock, σ, energy: truth; the audience's ρ̄_Nmax
(``audience``) with each of its errors, ``audience_total`` (σ_tot), ``audience_total_with_prior``,
``audience_total_scaled``, ``audience_total_calibrated_paper`` and ``audience_total_calibrated_median``,
and the calibrated centres ``audience_calibrated_paper`` (= ρ̄_Nmax) and ``audience_calibrated_median``
-- each only where the audience has it, NaN for a mock and σ without; HLT ± its stat ⊕ sys error,
A/A0 at the chosen λ, the difference in units of the combined error √(σ_tot² + σ_HLT²) --
conservative: both use the same samples, so their statistical errors are correlated -- the pulls
of ρ̄_Nmax by σ_tot and of HLT by its error, and the closure level), compare_hlt.md (per mock and σ:
the difference and HLT's plateau; then one row per method and error -- each error around its own
centre, HLT's around its result -- with closure.error_figures: coverage, mean |pull|, R_bv, the CRPS
of N(centre, σ²) (scoringrules, closure.crps) and the sharpness (median σ / max |truth|), and the
median error; all of ONE measurement, so each coverage is uncertain by about ±20 %; a note names
the mocks and σ without calibrated rows), compare_hlt.hdf5 (the csv's columns, with the
calibration files used in its provenance), {mock}_sigma{σ}_hlt.png and compare_hlt.png (all four
panels: the paper's band ρ̄_Nmax ± σ_tot and beside it the calibrated band of the median centre)
and hlt_logs/ (lsdensities' own logs).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import multiprocessing
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy import integrate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import analysis  # noqa: E402
import budget as bud  # noqa: E402
import calibration  # noqa: E402
import closure  # noqa: E402
from cli import main_guard  # noqa: E402
from config import ConfigError, add_common_args, config_from_args  # noqa: E402
from figures import plt, save_png  # noqa: E402
from io_utils import atomic_output, provenance, write_attrs  # noqa: E402
from mocks import MOCKS  # noqa: E402
from prediction_files import load_predictions  # noqa: E402
from sigma_model_utils import gaussian, kernel  # noqa: E402

PRECISION_DIGITS = 51         # mpmath digits: what lsdensities' adjust_precision suggests for t_max = 32
# lsdensities' example settings, with the λ range moved to where the stand-in noise puts the plateau
# (measured on the O3 mock: A/A0 < 0.1 and stable results between λ ~ 1e-5 and 1e-9)
HLT_SETTINGS = dict(alphaA=0, alphaB=0.5, alphaC=1.99, lambdaMax=0.1, lambdaStep=0.05, lambdaScanCap=8,
                    kfactor=0.1, lambdaMin=1e-10, comparisonRatio=0.3)
A0_CUT = 0.1
PERIODICITY = {"laplace": "EXP", "periodic": "COSH", "rratio": "COSH"}
# the audience's errors, each judged around its own centre: error -> (the frame's centre column, how
# the outputs name it); the error's own column is audience_<error>.  Those the audience has: total
# always, total_with_prior with Nref_prior, the others with interval networks and a calibration.
AUDIENCE_ERRORS = {
    "total": ("audience", "σ_tot (paper)"),
    "total_with_prior": ("audience", "σ_tot,prior (with the prior systematic)"),
    "total_scaled": ("audience", "S·σ_tot (scaled baseline)"),
    **{f"total_calibrated_{c}": (f"audience_calibrated_{c}", f"calibrated, {c} centre") for c in calibration.CENTRES},
}


# --- lsdensities with our target -----------------------------------------------------------------
def target_weight(kind: str, T: int):
    """w(ω) with b_kind = b_basis / w, b_basis lsdensities' basis; None when w = 1."""
    if kind not in PERIODICITY:
        raise ConfigError(f"kernel {kind!r}: lsdensities knows only the bases of {sorted(PERIODICITY)}")
    if kind != "rratio":
        return None
    # the ratio at t = 0, where the common factor 1 + e^{-Tω} never underflows
    return lambda omega: kernel(0.0, omega, "periodic", T) / kernel(0.0, omega, "rratio", T)


def _quad(f, lo: float, peak: float, sigma: float) -> float:
    """∫_lo^∞ f, f concentrated within 12σ of ``peak`` (a Gaussian factor), by QUADPACK."""
    hi = max(peak, lo) + 12.0 * sigma
    points = [p for p in (peak - 3 * sigma, peak, peak + 3 * sigma) if lo < p < hi]
    head = integrate.quad(f, lo, hi, points=points or None, epsabs=0.0, epsrel=1e-12, limit=400)[0]
    return head + integrate.quad(f, hi, np.inf, epsabs=0.0, epsrel=1e-12, limit=400)[0]


def weighted_ft(weight, e, t, sigma_, alpha, e0=0, type="EXP", T=0, ker_type="FULLNORMGAUSS"):
    """f_t(E) = ∫_{E0}^∞ e^{αω} b_t(ω) w(ω) G_σ(E - ω) dω with lsdensities' basis b_t (EXP or COSH)."""
    from mpmath import mpf
    e, t, sigma, alpha, e0 = (float(x) for x in (e, t, sigma_, alpha, e0))
    periodic = type == "COSH"

    def f(w):
        basis = np.exp(-t * w) + (np.exp(-(T - t) * w) if periodic else 0.0)
        return np.exp(alpha * w) * basis * (weight(w) if weight else 1.0) * gaussian(e - w, sigma)
    return mpf(_quad(f, e0, e, sigma))


def weighted_a0(weight, e_, sigma_, alpha, e0=0, ker_type="FULLNORMGAUSS"):
    """A0(E) = ∫_{E0}^∞ e^{αω} (w(ω) G_σ(E - ω))² dω."""
    from mpmath import mpf
    e, sigma, alpha, e0 = (float(x) for x in (e_, sigma_, alpha, e0))

    def f(w):
        return np.exp(alpha * w) * ((weight(w) if weight else 1.0) * gaussian(e - w, sigma)) ** 2
    return mpf(_quad(f, e0, e, sigma))


@contextlib.contextmanager
def target_integrals(kind: str, T: int):
    """Within: lsdensities' f_t and A0 are those of the target w(ω) G_σ(E - ω) of kernel ``kind``
    (its own closed forms when w = 1), memoised."""
    import lsdensities.abw as labw
    import lsdensities.core as lcore
    import lsdensities.transform as ltr
    saved = (ltr.ft_mp, labw.ft_mp, lcore.A0_mp, labw.A0_mp)
    weight = target_weight(kind, T)
    if weight is None:
        ft, a0 = saved[0], saved[2]
    else:
        ft, a0 = functools.partial(weighted_ft, weight), functools.partial(weighted_a0, weight)
    ft_cached, a0_cached = functools.lru_cache(maxsize=None)(ft), functools.lru_cache(maxsize=None)(a0)
    ltr.ft_mp = labw.ft_mp = ft_cached
    lcore.A0_mp = labw.A0_mp = a0_cached
    try:
        yield
    finally:
        ltr.ft_mp, labw.ft_mp, lcore.A0_mp, labw.A0_mp = saved


def run_hlt(cfg, samples: np.ndarray, sigma_gev: float, energies: np.ndarray, logdir: Path) -> dict:
    """lsdensities' HLT on bootstrap ``samples`` [N, n_t] (t = 1..t_max) at ``energies``."""
    from lsdensities.InverseProblemWrapper import AlgorithmParameters, InverseProblemWrapper
    from lsdensities.utils.rhoUtils import Inputs, MatrixBundle, Obs, init_precision
    from mpmath import mpf

    if cfg["t_min"] != 1:
        raise ConfigError(f"t_min = {cfg['t_min']}: lsdensities' basis starts at t = 1")
    logdir.mkdir(parents=True, exist_ok=True)
    log = io.StringIO()
    with contextlib.redirect_stdout(log), target_integrals(cfg["kernel"], int(cfg["T"])):
        init_precision(PRECISION_DIGITS)
        par = Inputs()
        par.time_extent, par.tmax = int(cfg["T"]), cfg.n_t
        par.periodicity, par.kerneltype = PERIODICITY[cfg["kernel"]], "FULLNORMGAUSS"
        par.sigma, par.e0, par.Na, par.A0cut = cfg.sigma(sigma_gev), float(cfg["E0_min"]), 1, A0_CUT
        par.num_boot, par.emin, par.emax, par.Ne = len(samples), float(energies[0]), float(energies[-1]), len(energies)
        par.outdir = par.logpath = str(logdir)
        par.assign_values()
        corr = Obs(T=cfg.n_t, tmax=cfg.n_t, nms=len(samples), is_resampled=True)
        corr.sample = np.array(samples, dtype=np.float64)
        corr.evaluate()
        corr.evaluate_covmatrix()
        corr.fill_mp_sample_NOSHIFT()     # our column 0 is t = 1, lsdensities' first basis function
        bundle = MatrixBundle(Bmatrix=corr.mpcov, bnorm=mpf(str(corr.central[0] ** 2)))
        hlt = InverseProblemWrapper(par=par, algorithmPar=AlgorithmParameters(**HLT_SETTINGS),
                                    matrix_bundle=bundle, correlator=corr, energies=list(map(float, energies)))
        hlt.prepareHLT()
        hlt.run()
        a0 = hlt.selectA0[hlt.algorithmPar.alphaA].valute_at_E     # A[g] is stored unnormalised
    (logdir / "stdout.log").write_text(log.getvalue())
    return {"rho": np.array(hlt.rhoResultHLT, dtype=float), "stat": np.array(hlt.drho_result, dtype=float),
            "sys": np.array(hlt.rho_sys_err_HLT, dtype=float),
            "total": np.array(hlt.rho_quadrature_err_HLT, dtype=float),
            "lambda": np.array(hlt.lambdaResultHLT, dtype=float),
            "A_over_A0": np.array([float(hlt.aa0[k] / a0[k]) for k in range(len(energies))])}


def lsdensities_version() -> str:
    from importlib.metadata import version
    return version("lsdensities")


def hlt_settings_text(cfg) -> str:
    """The HLT settings in words, for the outputs: one automated stability criterion, one α."""
    p = HLT_SETTINGS
    return (f"λ scanned downwards from {p['lambdaMax']:g} in steps of {p['lambdaStep']:g} (each step divided by 4 "
            f"whenever λ would reach 0) down to {p['lambdaMin']:g}; the result is taken at the first λ of the first "
            f"run of {p['lambdaScanCap']} consecutive λ whose results overlap the previous λ's within "
            f"{p['comparisonRatio']:g} of their statistical errors with A/A0 < {A0_CUT:g} (lsdensities' automated "
            f"stability criterion, the only one used); systematic error from the result at {p['kfactor']:g}·λ; "
            f"α = {p['alphaA']:g} only; E0 = {float(cfg['E0_min']):g} (the training space's lowest threshold)")


# --- the comparison ------------------------------------------------------------------------------
def audience_result(cfg, mock: str, sigma_gev: float):
    """(the prediction files of every ensemble, with the bootstrap samples they all predicted; the
    audience's budget; its calibrated result or None), method §8, §10: the budget by
    budget.error_budget, the calibrated result as the analysis computes it
    (analysis.calibrated_result: None without interval networks, a calibration file or the
    interval networks' predictions; a calibration made with other networks is refused)."""
    s = load_predictions(cfg, mock, sigma_gev)           # checks the samples agree across ensembles
    b = bud.error_budget(s.predictions, s.kind)
    return s, b, analysis.calibrated_result(cfg, s, b)


def _hlt_job(job):
    cfg, mock, sigma_gev, samples, energies, logdir = job
    t0 = time.perf_counter()
    out = run_hlt(cfg, samples, sigma_gev, energies, logdir)
    out["seconds"] = time.perf_counter() - t0
    return mock, sigma_gev, out


def audience_frame(mock, sigma_gev, pick, s, b, cal=None) -> pd.DataFrame:
    """Per energy of the grid's indices ``pick``: the truth, the audience's ρ̄_Nmax (``audience``) and
    each error it has (AUDIENCE_ERRORS) as audience_<error>, with the calibrated centres
    audience_calibrated_<centre> (``cal``: analysis.calibrated_result's, or None)."""
    columns = {"mock": mock, "sigma_gev": sigma_gev, "closure_level": s.closure_level, "E": s.energies[pick],
               "truth": s.truth[pick], "audience": b.central[pick], "audience_total": b.total[pick]}
    if b.has_prior:
        columns["audience_total_with_prior"] = b.total_with_prior[pick]
    if cal is not None:
        columns["audience_total_scaled"] = cal.columns["total_scaled"][pick]
        for centre in calibration.CENTRES:
            central, total = cal.of(centre)
            columns[f"audience_calibrated_{centre}"] = central[pick]
            columns[f"audience_total_calibrated_{centre}"] = total[pick]
    return pd.DataFrame(columns)


def comparison_frame(mock, sigma_gev, pick, s, b, h, cal=None) -> pd.DataFrame:
    """audience_frame with HLT's result ``h`` (run_hlt) at the same energies, the difference in units
    of √(σ_tot² + σ_HLT²) and both methods' pulls."""
    frame = audience_frame(mock, sigma_gev, pick, s, b, cal)
    truth, central, total = frame["truth"], frame["audience"], frame["audience_total"]
    combined = np.sqrt(total**2 + h["total"] ** 2)
    return frame.assign(
        hlt=h["rho"], hlt_stat=h["stat"], hlt_sys=h["sys"], hlt_total=h["total"], hlt_lambda=h["lambda"],
        hlt_A_over_A0=h["A_over_A0"], difference_over_combined=(central - h["rho"]) / combined,
        audience_pull=(central - truth) / total, hlt_pull=(h["rho"] - truth) / h["total"])


def methods(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """[(name, centre column, error column)]: the audience's errors present in ``frame``, then HLT's
    (stat ⊕ sys) when it has HLT's columns."""
    out = [(f"audience {label}", centre, f"audience_{error}") for error, (centre, label) in AUDIENCE_ERRORS.items()
           if f"audience_{error}" in frame.columns]
    return out + ([("HLT (lsdensities) stat ⊕ sys", "hlt", "hlt_total")] if "hlt" in frame.columns else [])


def method_rows(frame: pd.DataFrame) -> list[dict]:
    """Per mock, σ and method (``methods``): closure.error_figures of its centre and error over the
    energies of ``frame`` (one measurement: coverage, mean |pull|, R_bv, CRPS of N(centre, σ²),
    sharpness) and the median error.  A method whose error is absent for that mock and σ (NaN
    throughout: e.g. no interval predictions of that mock) has no row."""
    rows = []
    for (mock, sigma_gev, level), g in frame.groupby(["mock", "sigma_gev", "closure_level"], sort=False):
        for name, centre, error in methods(g):
            if g[error].isna().all():
                continue
            figures = closure.error_figures(g[centre].to_numpy(), g["truth"].to_numpy(), g[error].to_numpy())
            rows.append({"mock": mock, "sigma_gev": sigma_gev, "closure_level": level, "method": name,
                         "error": error, **figures, "median_error": float(np.median(g[error]))})
    return rows


def difference_rows(frame: pd.DataFrame) -> list[dict]:
    """Per mock and σ: the audience against HLT, (ρ̄ − ρ_HLT)/√(σ_tot² + σ_HLT²), and HLT's plateau."""
    rows = []
    for (mock, sigma_gev, level), g in frame.groupby(["mock", "sigma_gev", "closure_level"], sort=False):
        d = np.abs(g["difference_over_combined"])
        rows.append({"mock": mock, "sigma_gev": sigma_gev, "closure_level": level, "energies": len(g),
                     "mean_abs_difference": float(d.mean()), "share_within_1": float(np.mean(d <= 1)),
                     "share_within_2": float(np.mean(d <= 2)),
                     "hlt_plateau_share": float(np.mean(g["hlt_A_over_A0"] < A0_CUT))})
    return rows


def markdown(cfg, frame: pd.DataFrame, header: list[str], uncalibrated: list[str]) -> str:
    """compare_hlt.md: ``header`` (the run in words), the audience against HLT per mock and σ, then
    every method and error per mock and σ; ``uncalibrated`` names the (mock, σ) without calibrated rows."""
    centre = cfg["calibrated_centre"]
    lines = header + ["", "| mock | σ | mean \\|diff\\| | \\|diff\\| ≤ 1 | \\|diff\\| ≤ 2 | HLT plateau found |",
                      "|---|---|---|---|---|---|"]
    for r in difference_rows(frame):
        lines.append(f"| {r['mock']} | {r['sigma_gev']} | {r['mean_abs_difference']:.2f} "
                     f"| {100 * r['share_within_1']:.0f}% | {100 * r['share_within_2']:.0f}% "
                     f"| {100 * r['hlt_plateau_share']:.0f}% |")
    lines += ["", f"Every method and error at the same energies, each around its own centre (ρ̄_Nmax; the "
              f"calibrated median centre: the interval networks' median; HLT: its own result). The calibrated "
              f"errors (calibrate_sigma.py) promise {calibration.GUARANTEES['calibrated']} (calibration_space = "
              f"{cfg['calibration_space']}); the recommended centre is {centre} (calibrated_centre). CRPS of "
              "N(centre, σ²) (lower is better), sharpness = median σ / max |truth| over these energies, median "
              "error = median σ.", "",
              "| mock | σ | method, error | coverage | mean \\|pull\\| | R_bv | CRPS | sharpness | median error |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in method_rows(frame):
        lines.append(f"| {r['mock']} | {r['sigma_gev']} | {r['method']} | {100 * r['coverage']:.0f}% "
                     f"| {r['mean_abs_pull']:.2f} | {r['r_bv']:.2f} | {r['crps']:.3g} | {r['sharpness']:.3g} "
                     f"| {r['median_error']:.3g} |")
    if uncalibrated:
        lines += ["", f"No calibrated rows for {', '.join(uncalibrated)}: the audience has no interval networks "
                  "(interval_networks=false), or no calibration file (run calibrate_sigma.py) or no interval "
                  "networks' predictions of the mock (rerun the prediction)."]
    return "\n".join(lines) + "\n"


def plot_panel(ax_top, ax_bottom, g: pd.DataFrame, s, b, title: str, cal=None) -> None:
    ax_top.plot(s.energies, s.truth, "k-", lw=1.2, label="exact truth")
    ax_top.plot(s.energies, b.central, color="tab:red", lw=1, label=r"audience $\pm\sigma_{\rm tot}$")
    ax_top.fill_between(s.energies, b.central - b.total, b.central + b.total, color="tab:red", alpha=0.25)
    if cal is not None:       # beside the paper's band, never instead of it
        central, total = cal.of("median")
        ax_top.plot(s.energies, central, color="tab:green", lw=1, ls=":",
                    label=r"calibrated, median centre $\pm\sigma_{\rm cal}$")
        ax_top.fill_between(s.energies, central - total, central + total, facecolor="tab:green", alpha=0.2,
                            edgecolor="tab:green", linewidth=0.8)
    ax_top.errorbar(g["E"], g["hlt"], yerr=g["hlt_total"], fmt="o", ms=3, color="tab:blue", capsize=2,
                    label="HLT (lsdensities), stat ⊕ sys")
    ax_top.set_title(title, fontsize=9)
    ax_top.set_ylabel(r"$\rho_\sigma(E)$")
    ax_top.legend(fontsize=7)
    ax_bottom.axhspan(-1, 1, color="0.85")
    ax_bottom.plot(g["E"], g["difference_over_combined"], "o", ms=3, color="tab:purple")
    ax_bottom.axhline(0, color="k", lw=0.6)
    ax_bottom.set_ylabel("(aud - HLT) / comb.", fontsize=8)
    ax_bottom.set_xlabel("E (lattice units)")


@main_guard
def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--energy-stride", type=int, default=2,
                        help="HLT at every n-th energy of the grid (default 2; HLT costs 10-30 s per energy)")
    parser.add_argument("--workers", type=int, default=2, help="parallel (mock, σ) HLT runs (default 2)")
    parser.add_argument("--mocks", default=",".join(MOCKS), help=f"comma-separated subset of {','.join(MOCKS)}")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        import lsdensities  # noqa: F401
    except ImportError:
        print("error: the HLT cross-check needs the optional package lsdensities: "
              "pip install -r requirements-hlt.txt", file=sys.stderr)
        return 2
    cfg = config_from_args(args)
    target_weight(cfg["kernel"], int(cfg["T"]))
    mocks = [m for m in args.mocks.split(",") if m]
    if set(mocks) - set(MOCKS):
        raise ConfigError(f"unknown mocks {sorted(set(mocks) - set(MOCKS))}; expected some of {MOCKS}")
    inputs = {(m, sg): audience_result(cfg, m, sg) for m in mocks for sg in cfg["sigmas_gev"]}
    pick = np.arange(0, len(cfg.energies), max(1, args.energy_stride))
    energies = cfg.energies[pick]
    out_dir = cfg.path("results") / "hlt"
    jobs = [(cfg, m, sg, s.samples, energies, out_dir / "hlt_logs" / f"{m}_sigma{sg}")
            for (m, sg), (s, _, _) in inputs.items()]
    print(f"HLT (lsdensities) on {len(jobs)} (mock, sigma) inputs x {len(energies)} energies, "
          f"{len(jobs[0][3])} bootstrap samples each, {args.workers} worker(s) ...", flush=True)
    results = {}
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        for mock, sigma_gev, h in pool.imap_unordered(_hlt_job, jobs):
            results[(mock, sigma_gev)] = h
            print(f"  {mock} sigma={sigma_gev}: HLT done in {h['seconds']:.0f} s", flush=True)

    frame = pd.concat([comparison_frame(m, sg, pick, s, b, results[(m, sg)], cal)
                       for (m, sg), (s, b, cal) in inputs.items()], ignore_index=True)
    with atomic_output(out_dir / "compare_hlt.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")
    levels = sorted({closure.level_label(s.closure_level) for s, _, _ in inputs.values()})
    header = [f"Preset `{cfg.preset}`, kernel {cfg['kernel']}, N_boot = {len(jobs[0][3])}, closure test "
              f"{' and '.join(levels)} (each mock measured once, the same samples for both methods), HLT at "
              f"{len(energies)} energies (every {args.energy_stride} of the grid); difference = "
              "(audience − HLT)/√(σ_tot² + σ_HLT²). Coverage, mean |pull|, R_bv and CRPS are of one measurement "
              "(a single mock's coverage is uncertain by about ±20 %).",
              f"lsdensities {lsdensities_version()} settings: {hlt_settings_text(cfg)}."]
    uncalibrated = [f"{m} σ = {sg}" for (m, sg), (_, _, cal) in inputs.items() if cal is None]
    with atomic_output(out_dir / "compare_hlt.md") as tmp:
        tmp.write_text(markdown(cfg, frame, header, uncalibrated))
    with atomic_output(out_dir / "compare_hlt.hdf5") as tmp:
        with h5py.File(tmp, "w") as h5:
            for column in frame.columns:
                values = frame[column].to_numpy()
                h5[column] = values.astype("S") if values.dtype == object else values
            write_attrs(h5, provenance(cfg, what="compare_hlt", hlt_settings=json.dumps(HLT_SETTINGS),
                                       closure_levels=json.dumps(sorted({int(s.closure_level)
                                                                         for s, _, _ in inputs.values()})),
                                       lsdensities_version=lsdensities_version(),
                                       a0_cut=A0_CUT, e0=float(cfg["E0_min"]), precision_digits=PRECISION_DIGITS,
                                       hlt_seconds=json.dumps({f"{m}_{sg}": h["seconds"]
                                                               for (m, sg), h in results.items()}),
                                       calibrations=json.dumps({f"{m}_{sg}": cal.calibration
                                                                for (m, sg), (_, _, cal) in inputs.items()
                                                                if cal is not None})))

    keys = list(inputs)
    fig, axes = plt.subplots(2, len(keys), figsize=(4.2 * len(keys), 5.2), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1]}, squeeze=False)
    for j, key in enumerate(keys):
        s, b, cal = inputs[key]
        g = frame[(frame["mock"] == key[0]) & (frame["sigma_gev"] == key[1])]
        plot_panel(axes[0, j], axes[1, j], g, s, b, f"{key[0]}, σ = {key[1]} ({closure.level_label(s.closure_level)})",
                   cal)
        single, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 5.2), sharex=True,
                                             gridspec_kw={"height_ratios": [3, 1]})
        plot_panel(top, bottom, g, s, b, f"{key[0]}, σ = {key[1]} ({closure.level_label(s.closure_level)}): "
                   "audience vs HLT (same samples)", cal)
        save_png(single, out_dir / f"{key[0]}_sigma{key[1]}_hlt.png", dpi=110)
    fig.suptitle(f"audience (preset {cfg.preset}) vs HLT (lsdensities) on the same bootstrap samples", fontsize=10)
    fig.tight_layout()
    save_png(fig, out_dir / "compare_hlt.png", dpi=110)
    for name in ("compare_hlt.csv", "compare_hlt.md", "compare_hlt.hdf5", "compare_hlt.png"):
        print(f"wrote {out_dir / name}")
    print()
    print((out_dir / "compare_hlt.md").read_text())
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A worked real-data example, end to end: HPQCD's η_s correlator through a demo-size audience,
compared with the smeared density implied by a two-state fit of the same correlator.

    python run_etas_example.py [--root DIR] [--preset demo] [--set KEY=VALUE ...] [--tmin-fit 5]

1. data/fetch_hpqcd_etas.sh fetches the η_s data set (225 configurations, T = 64, from the
   corrfitter 8.2 sdist, GPL: fetched at run time, never stored in this repository) into
   DIR/data/: the data themselves (hpqcd_etas.data, a gvar data set) and their noise file
   (hpqcd_etas_T64.h5: folded, t = 1..32, the covariance of the mean).
2. run_pipeline.py trains an audience for it (the preset with kernel=periodic, T=64 and that noise
   file) and validates it on the two mocks, as `make demo` does.
3. predict_on_user_data.py reads the data set (gvar), folds it, draws N_boot bootstrap samples of
   the configurations (seeded) and lets every network predict them; analyze_user_data.py gives
   the result with its error budget (results/hpqcd_etas_sigma{σ}_budget.{csv,json,hdf5}, plots).
4. A standard correlated two-state fit of the folded mean over t = tmin_fit..32,
   C(t) = Σ_n A_n [e^{-E_n t} + e^{-E_n (T-t)}], i.e. ρ(ω) = Σ_n A_n δ(ω - E_n) for the periodic
   kernel, gives ρ_σ(E) ≈ Σ_n A_n G_σ(E - E_n), its error propagated from the fit's parameter
   covariance (linearised).  States above the first excitation are not in the fit: at energies
   beyond E_1 the fit's density misses their contribution.
5. The methods the field uses instead (peers.py: HLT, GP, MEM, NN-P2P; ``--peers``, those whose
   packages are installed by default) on the same bootstrap samples (read_user_samples, as the
   prediction draws them), each configured as in the comparison of docs/validation.md#peers; HLT at
   every ``--hlt-energy-stride``-th energy.
6. The comparison: results/hpqcd_etas_fit_comparison.{csv,json,md} (per σ and energy the
   densities, their errors and the pull (audience - fit)/sqrt(σ_tot² + σ_fit²); each peer's ρ_σ
   and error, <peer> and <peer>_error) and results/hpqcd_etas_comparison.png.
   ``--no-audience`` skips steps 2-3 (no training): the peers beside the fit only.

Every energy here is in lattice units (1/a, method §1): aE_0 ≈ 0.416 is the η_s mass times the
lattice spacing; the preset's a_inv_gev = 1, so its energy grid and widths σ (written in "GeV")
are read as lattice units, i.e. σ = 0.44/a and 0.63/a.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

import analyze_user_data
import peers
import predict_on_user_data
import run_pipeline
from cli import main_guard
from config import ConfigError, add_common_args, config_from_args
from correlator_files import fold_correlator, read_correlator
from figures import plt, save_png
from io_utils import atomic_output, fingerprint, provenance
from result_files import read_budget_json
from sigma_model_utils import gaussian, kernel
from user_correlators import read_user_samples

REPO = Path(__file__).resolve().parent
NAME = "hpqcd_etas"
DATA = "data/hpqcd_etas.data"
NOISE = "data/hpqcd_etas_T64.h5"
SETTINGS = ["kernel=periodic", "T=64", f"noise_file={NOISE}"]


def common_args(cfg) -> list[str]:
    return ["--preset", cfg.preset, "--root", str(cfg.root)] + [a for o in cfg.overrides for a in ("--set", o)]


# --- the two-state fit ---------------------------------------------------------------------------
def two_state_fit(mean, cov, t, T: int):
    """Correlated least squares of C(t) = A_0 b(t, E_0) + A_1 b(t, E_0 + ΔE) (periodic kernel b).

    Returns (θ = [A_0, E_0, A_1, E_1], cov(θ), χ², dof); cov(θ) = (JᵀJ)⁻¹ of the whitened residuals.
    """
    L = np.linalg.cholesky(cov)

    def residuals(p):
        A0, E0, A1, dE = p
        model = A0 * kernel(t, E0, "periodic", T) + A1 * kernel(t, E0 + dE, "periodic", T)
        return np.linalg.solve(L, mean - model)

    E_eff = np.log(mean[len(t) // 2 - 1] / mean[len(t) // 2]) if len(t) > 3 else 0.5
    start = [mean[0] / kernel(t[0], E_eff, "periodic", T), E_eff, mean[0] / kernel(t[0], E_eff, "periodic", T), E_eff]
    fit = least_squares(residuals, start, method="lm", xtol=1e-14, ftol=1e-14, max_nfev=20000)
    if not fit.success:
        raise RuntimeError(f"the two-state fit did not converge: {fit.message}")
    A0, E0, A1, dE = fit.x
    to_energies = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]], dtype=float)
    cov_p = to_energies @ np.linalg.inv(fit.jac.T @ fit.jac) @ to_energies.T
    return np.array([A0, E0, A1, E0 + dE]), cov_p, float(2 * fit.cost), len(t) - 4


def fit_density(theta, cov_theta, energies, sigma):
    """ρ_σ(E) = Σ_n A_n G_σ(E - E_n) and its error, linearised in θ = [A_0, E_0, A_1, E_1]."""
    rho, jac = np.zeros_like(energies), np.zeros((len(energies), 4))
    for n in range(2):
        A, E = theta[2 * n], theta[2 * n + 1]
        g = gaussian(energies - E, sigma)
        rho += A * g
        jac[:, 2 * n] = g
        jac[:, 2 * n + 1] = A * g * (energies - E) / sigma**2
    return rho, np.sqrt(np.einsum("ei,ij,ej->e", jac, cov_theta, jac))


# --- the peers ---------------------------------------------------------------------------------
def run_peers(cfg, samples: np.ndarray, names: list[str], hlt_stride: int) -> dict:
    """{(peer, σ): (energy indices, peers.Result)} of each peer on the η_s bootstrap samples.  Each
    answer is kept in results/hpqcd_etas_peers/<peer>_sigma<σ>.json and reused while the samples,
    the energies and the peer's settings are the same (a killed run resumes)."""
    out = {}
    for sigma_gev in cfg["sigmas_gev"]:
        for name in names:
            pick = np.arange(0, len(cfg.energies), hlt_stride if name == "hlt" else 1)
            made = fingerprint({"samples": file_digest(samples), "pick": pick.tolist(), "sigma": sigma_gev,
                                "settings": peers.PEERS[name].settings(float(cfg["E0_min"]))})
            path = cfg.path("results") / f"{NAME}_peers" / f"{name}_sigma{sigma_gev}.json"
            kept = json.loads(path.read_text()) if path.is_file() else {}
            if kept.get("made_of") == made:
                result = peers.Result(np.array(kept["central"]), np.array(kept["error"]), seconds=kept["seconds"])
            else:
                result = peers.solve(name, peers.problem(cfg, samples, sigma_gev, pick))
                with atomic_output(path) as tmp:
                    tmp.write_text(json.dumps({"made_of": made, "central": result.central.tolist(),
                                               "error": result.error.tolist(), "seconds": result.seconds,
                                               "provenance": provenance(cfg, peer=name)}))
            out[(name, sigma_gev)] = (pick, result)
            print(f"  {peers.PEERS[name].label}, sigma = {sigma_gev}: {result.seconds:.0f} s", flush=True)
    return out


def file_digest(array: np.ndarray) -> str:
    import hashlib
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float64).tobytes()).hexdigest()


# --- the comparison ----------------------------------------------------------------------------
def compare(cfg, theta, cov_theta, peer_results: dict, audience: bool = True) -> pd.DataFrame:
    rows = []
    for sigma_gev in cfg["sigmas_gev"]:
        E = cfg.energies
        fit, fit_err = fit_density(theta, cov_theta, E, cfg.sigma(sigma_gev))
        columns = {"sigma_gev": sigma_gev, "E": E, "fit": fit, "fit_error": fit_err}
        if audience:
            record = read_budget_json(cfg.results_file(NAME, sigma_gev, "budget.json"))
            central, total = np.array(record["central"]), np.array(record["total"], dtype=float)
            columns |= {"audience": central, "audience_total": total,
                        "pull": (central - fit) / np.sqrt(total**2 + fit_err**2)}
        for (name, s), (pick, result) in peer_results.items():
            if s == sigma_gev:
                for column, values in ((name, result.central), (f"{name}_error", result.error)):
                    columns[column] = np.full(len(E), np.nan)
                    columns[column][pick] = values
        rows.append(pd.DataFrame(columns))
    return pd.concat(rows, ignore_index=True)


def summary_lines(table: pd.DataFrame, theta, names: list[str]) -> list[str]:
    """Per σ and method (the audience, then each peer): (method - fit)/√(error² + σ_fit²) over the
    energies, below E_1, and the values nearest E_0."""
    lines = []
    methods = (["audience"] if "audience" in table.columns else []) + names
    for sigma_gev, part in table.groupby("sigma_gev"):
        for method in methods:
            known = part[np.isfinite(part[method])]
            peak = known.iloc[int(np.argmin(np.abs(known["E"] - theta[1])))]
            error = part["audience_total" if method == "audience" else f"{method}_error"]
            ok = np.isfinite(part[method]).to_numpy()
            p = np.abs((part[method] - part["fit"]) / np.sqrt(error**2 + part["fit_error"] ** 2)).to_numpy()[ok]
            below = (part["E"] <= theta[3]).to_numpy()[ok]
            label = "audience" if method == "audience" else peers.PEERS[method].label
            near = (f"audience {peak['audience']:.4f} ± {peak['audience_total']:.4f}" if method == "audience" else
                    f"{label} {peak[method]:.4f} ± {peak[method + '_error']:.4f}")
            lines.append(
                f"sigma = {sigma_gev}, {label}: |pull| <= 1 at {100 * np.mean(p <= 1):.0f}% and <= 2 at "
                f"{100 * np.mean(p <= 2):.0f}% of the {len(p)} energies ({100 * np.mean(p[below] <= 1):.0f}% / "
                f"{100 * np.mean(p[below] <= 2):.0f}% for E <= E_1 = {theta[3]:.3f}); mean |pull| {p.mean():.2f}; "
                f"at E = {peak['E']:.3f} (nearest E_0): {near}, fit {peak['fit']:.4f} ± {peak['fit_error']:.4f}")
    return lines


def plot(cfg, table, theta, path, names: list[str]) -> None:
    sigmas = list(cfg["sigmas_gev"])
    fig, axes = plt.subplots(1, len(sigmas), figsize=(5 * len(sigmas), 3.8), layout="constrained")
    for ax, sigma_gev in zip(np.atleast_1d(axes), sigmas):
        part = table[table["sigma_gev"] == sigma_gev]
        E = part["E"]
        if "audience" in part.columns:
            ax.fill_between(E, part["audience"] - part["audience_total"], part["audience"] + part["audience_total"],
                            color="C0", alpha=0.35, label=r"audience (Nmax) $\pm\sigma_{\rm tot}$")
            ax.plot(E, part["audience"], color="C0", lw=1.4)
        for n, name in enumerate(names):
            ok = np.isfinite(part[name])
            ax.errorbar(E[ok], part[name][ok], yerr=part[f"{name}_error"][ok], fmt="o-" if name == "hlt" else "-",
                        ms=2.5, lw=0.9, color=f"C{n + 4}", capsize=1.5, label=peers.PEERS[name].label)
        ax.fill_between(E, part["fit"] - part["fit_error"], part["fit"] + part["fit_error"], color="C3",
                        alpha=0.35, label=r"two-state fit $\sum_n A_n G_\sigma(E-E_n)$")
        ax.plot(E, part["fit"], color="C3", lw=1.2, ls="--")
        for n, E_n in enumerate(theta[1::2]):
            ax.axvline(E_n, color="k", lw=0.7, ls=":", label=r"fit $E_0, E_1$" if n == 0 else None)
        ax.set(xlabel="E (lattice units, 1/a)", ylabel=r"$\rho_\sigma(E)$",
               title=f"HPQCD η_s, σ = {cfg.sigma(sigma_gev):g}/a")
        ax.legend(fontsize=7)
    save_png(fig, path, dpi=80)


@main_guard
def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--tmin-fit", type=int, default=5, help="first time slice of the two-state "
                        "fit (default 5, as corrfitter's own η_s example)")
    parser.add_argument("--peers", default=None,
                        help=f"comma-separated subset of {','.join(peers.PEERS)} (default: those installed)")
    parser.add_argument("--hlt-energy-stride", type=int, default=4, help="HLT at every n-th energy (default 4)")
    parser.add_argument("--no-audience", action="store_true",
                        help="skip the audience (no training): the peers beside the two-state fit only")
    parser.set_defaults(preset="demo")
    args = parser.parse_args(argv)
    args.overrides = SETTINGS + list(args.overrides or [])
    cfg = config_from_args(args)
    started = time.time()

    # 1. the data and their noise file
    if not (cfg.path(DATA).is_file() and cfg.path(NOISE).is_file()):
        subprocess.run(["bash", str(REPO / "data" / "fetch_hpqcd_etas.sh"), str(cfg.path(NOISE))], check=True,
                       env={**os.environ, "SPECTRAL_PYTHON": sys.executable})   # this interpreter's packages
    names = ([n for n in args.peers.split(",") if n] if args.peers is not None
             else [n for n in peers.PEERS if peers.available(n)])
    if set(names) - set(peers.PEERS):
        raise ConfigError(f"--peers {args.peers}: expected some of {','.join(peers.PEERS)}")
    if not args.no_audience:
        # 2. the audience, trained for this kernel, T and noise (and checked on the mocks)
        if run_pipeline.main(common_args(cfg)) != 0:
            return 1
        # 3. prediction and error budget of the η_s data
        data_args = [str(cfg.path(DATA)), "--format", "gvar", "--tag", "etas", "--fold", "--name", NAME,
                     "--kernel", "periodic", "--T", "64"]
        if predict_on_user_data.main(data_args + common_args(cfg)) != 0:
            return 1
        if analyze_user_data.main(["--name", NAME] + common_args(cfg)) != 0:
            return 1
    # 4. the two-state fit of the same configurations
    corr = fold_correlator(read_correlator(cfg.path(DATA), "gvar", "etas"), T=cfg["T"])
    t = np.arange(args.tmin_fit, cfg["t_max"] + 1)
    x = corr.values[:, t]
    mean, cov = x.mean(axis=0), np.cov(x, rowvar=False) / len(x)
    theta, cov_theta, chi2, dof = two_state_fit(mean, cov, t, cfg["T"])
    err = np.sqrt(np.diag(cov_theta))
    fit_line = (f"two-state fit, t = {t[0]}..{t[-1]}, {len(x)} configurations: chi2/dof = {chi2:.1f}/{dof}; "
                + ", ".join(f"{k} = {v:.5g} ± {e:.2g}" for k, v, e in zip(("A_0", "E_0", "A_1", "E_1"), theta, err)))
    # 5. the peers on the same bootstrap samples as the audience's
    samples = read_user_samples(cfg.path(DATA), cfg, NAME, None, "periodic", 64, "gvar", "etas", True).samples
    print(f"the peers {', '.join(names) or '(none)'} on the {len(samples)} bootstrap samples:", flush=True)
    peer_results = run_peers(cfg, samples, names, max(1, args.hlt_energy_stride))
    # 6. the comparison
    table = compare(cfg, theta, cov_theta, peer_results, audience=not args.no_audience)
    lines = summary_lines(table, theta, names)
    settings = {peers.PEERS[n].label: peers.PEERS[n].settings(float(cfg["E0_min"])) for n in names}
    record = provenance(cfg, fit=fit_line, fit_parameters=json.dumps(theta.tolist()),
                        fit_covariance=json.dumps(cov_theta.tolist()), summary=json.dumps(lines),
                        peers=json.dumps(settings),
                        peer_seconds=json.dumps({f"{n}_{s}": r.seconds for (n, s), (_, r) in peer_results.items()}))
    csv_path = cfg.path("results") / f"{NAME}_fit_comparison.csv"
    with atomic_output(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g")
    json_path = csv_path.with_suffix(".json")
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps({"fit": fit_line, "theta": theta.tolist(), "cov_theta": cov_theta.tolist(),
                                   "chi2": chi2, "dof": dof, "summary": lines, "comparison": table.to_dict("list"),
                                   "provenance": record}, indent=1) + "\n")
    md_path = csv_path.with_suffix(".md")
    with atomic_output(md_path) as tmp:
        tmp.write_text("# HPQCD η_s: audience and peers vs two-state fit (lattice units)\n\n" + fit_line + "\n\n"
                       + "\n".join(f"- {line}" for line in lines) + "\n\nThe peers' settings:\n\n"
                       + "\n".join(f"- {k}: {v}" for k, v in settings.items()) + "\n")
    figure = cfg.path("results") / f"{NAME}_comparison.png"
    plot(cfg, table, theta, figure, names)
    print(f"\n{fit_line}")
    for line in lines:
        print("  " + line)
    print(f"wrote {csv_path}, {json_path.name}, {md_path.name}, {figure.name}")
    print(f"η_s example finished in {(time.time() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

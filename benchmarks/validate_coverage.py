"""Are the audience's error bars honest?  Coverage of σ_tot on many random test densities (issue 6).

    python benchmarks/validate_coverage.py --preset demo [--root DIR] [--n-per-family 30]
                                           [--families breit_wigner,O3_threshold] [--no-train]

1. The audience of the preset under --root is reused (every checkpoint present) or, when some are
   missing, trained by the pipeline's own generation and training tasks (run_pipeline.tasks, one
   process each, as the local runner does; finished work is kept).  --no-train stops instead.
2. For each family of validation.py (out-of-distribution densities, plus the in-distribution control
   ``training_space``) n densities are drawn with their exact correlators and truths; each gets its
   own N_boot noisy samples with the noise of SPEC §4 (prediction.draw_samples, seeded by
   rng_for(cfg, 'validation-noise', family, i)).
3. Every replica of every ensemble predicts every sample (prediction.predict_ensemble, all densities
   in one batched pass per ensemble and σ); the budget of SPEC §8 is computed per density
   (budget.error_budget).
4. Per family and σ: coverage = share of (density, energy) with |ρ̄ - truth| ≤ σ_tot (≈ 68% for
   honest Gaussian errors; ± the standard error from the spread of the per-density coverages,
   since the energies of one density are strongly correlated), the same with σ_stat ⊕ σ_rep only
   (the baseline without the systematics), mean |pull| (√(2/π) ≈ 0.80 for honest errors), the
   median relative error |ρ̄ - truth|/|truth| over the energies where |truth| ≥ 10% of that
   density's maximum, the median share of σ_tot² carried by Σ_b² + Σ_ρ² + Σ_n², and, among the
   misses (|ρ̄ - truth| > σ_tot), the share that every ensemble makes on the same side by more
   than σ_tot: a bias common to the audience, which no Σ_X (a difference of ensembles) can see.

Writes under --root, in results/validation/: coverage.csv and coverage.md (the table),
densities.csv (every density's parameters and own coverage), validation.hdf5 (every density's
truth, result and budget components, with provenance), pulls.png (pull histograms per family and
σ against N(0, 1)), coverage_vs_energy.png (per energy, the share of a family's densities covered)
and examples_sigma{σ}.png (one reconstruction per family against its truth).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import budget as bud  # noqa: E402
import validation  # noqa: E402
from config import ConfigError, add_common_args, config_from_args  # noqa: E402
from devices import select_device  # noqa: E402
from io_utils import InputError, atomic_output, provenance, write_attrs  # noqa: E402
from prediction import InputSamples, draw_samples, find_checkpoints, predict_ensemble  # noqa: E402
from noise_files import load_noise_file  # noqa: E402
from run_pipeline import missing_outputs, tasks  # noqa: E402
from sigma_model_utils import rng_for  # noqa: E402

HONEST_COVERAGE = 0.6827
RELATIVE_FLOOR = 0.1          # relative errors only where |truth| >= 10% of the density's maximum


def ensure_audience(cfg, train: bool) -> None:
    """Reuse the trained audience, or train what is missing with the pipeline's own tasks."""
    missing = [p for p in missing_outputs(cfg, "training") if p.endswith(".pth")]
    if not missing:
        print(f"reusing the audience under {cfg.root} (all {len(cfg['ensembles'])} ensembles x "
              f"{cfg['n_replicas']} replicas x {len(cfg['sigmas_gev'])} sigmas present)")
        return
    if not train:
        raise SystemExit(f"{len(missing)} checkpoint(s) missing, e.g. {missing[0]}; train the audience "
                         f"first (python run_pipeline.py --preset {cfg.preset} --root {cfg.root}) "
                         "or drop --no-train")
    print(f"{len(missing)} checkpoint(s) missing: training the audience with the pipeline's tasks")
    for stage, command in tasks(cfg):
        if stage in ("generation", "training"):
            print("$ " + " ".join(command), flush=True)
            subprocess.run(command, check=True)


def draw_inputs(cfg, families, n_per_family, noise):
    """{family: ([ValidationDensity], samples [n, N_boot, n_t])}, exact and seeded."""
    out = {}
    for family in families:
        t0 = time.perf_counter()
        densities = (validation.draw_family(cfg, family, n_per_family) if family == validation.CONTROL
                     else [validation.draw_family_member(cfg, family, i)
                           for i in tqdm(range(n_per_family), desc=f"exact {family}", leave=False)])
        samples = np.stack([draw_samples(d.correlator, noise,
                                         rng_for(cfg, "validation-noise", validation.FAMILIES.index(family), i),
                                         int(cfg["n_boot"]))
                            for i, d in enumerate(densities)])
        print(f"  {family}: {len(densities)} densities, exact correlators and truths in "
              f"{time.perf_counter() - t0:.1f} s")
        out[family] = (densities, samples)
    return out


def predict_everything(cfg, inputs, device):
    """{σ: {ensemble: {family: P [n, N_boot, N_r, N_E]} or None}}: one batched pass per (σ, ensemble)."""
    families = list(inputs)
    stacked = np.concatenate([inputs[f][1].reshape(-1, cfg.n_t) for f in families])
    shapes = [inputs[f][1].shape[:2] for f in families]
    together = InputSamples("validation", stacked, "bootstrap")
    out = {}
    for sigma_gev in cfg["sigmas_gev"]:
        out[sigma_gev] = {}
        for ens in cfg["ensembles"]:
            present, missing = find_checkpoints(cfg, sigma_gev, ens)
            for path in missing:
                print(f"  WARNING: missing checkpoint {path}")
            if not present:
                out[sigma_gev][ens] = None
                continue
            P, _ = predict_ensemble(cfg, together, sigma_gev, ens, present, device)
            parts, lo = {}, 0
            for family, (n, n_boot) in zip(families, shapes):
                parts[family] = P[lo:lo + n * n_boot].reshape(n, n_boot, *P.shape[1:])
                lo += n * n_boot
            out[sigma_gev][ens] = parts
    return out


def budgets_of(cfg, predictions, family, n):
    """The SPEC §8 budget of each density of a family at each σ: {σ: [Budget]}."""
    out = {}
    for sigma_gev, by_ens in predictions.items():
        out[sigma_gev] = [bud.error_budget({ens: None if P is None else P[family][i] for ens, P in by_ens.items()})
                          for i in range(n)]
    return out


def family_metrics(truths: np.ndarray, budgets: list) -> dict:
    """The issue-6 figures of one family at one σ from truths [n, N_E] and the densities' budgets."""
    central = np.stack([b.central for b in budgets])
    total = np.stack([b.total for b in budgets])
    stat_rep = np.stack([np.hypot(b.stat, b.rep) for b in budgets])
    sys2 = np.stack([b.sys_b**2 + b.sys_rho**2 + b.sys_n**2 for b in budgets])
    miss = np.abs(central - truths)
    per_density = np.mean(miss <= total, axis=1)
    # a miss that every ensemble shares (each off by more than σ_tot, on the same side) is a bias
    # common to the whole audience: the Σ_X, differences between ensembles, cannot see it
    side = np.sign(central - truths)
    common = np.ones_like(miss, dtype=bool)
    for k in budgets[0].ensembles:
        c_k = np.stack([b.ensembles[k]["central"] for b in budgets])
        common &= (np.sign(c_k - truths) == side) & (np.abs(c_k - truths) > total)
    missed = miss > total
    scale = np.abs(truths).max(axis=1, keepdims=True)
    relevant = np.abs(truths) >= RELATIVE_FLOOR * scale
    return {
        "n_densities": len(budgets),
        "coverage": float(np.mean(miss <= total)),
        "coverage_err": float(per_density.std(ddof=1) / np.sqrt(len(per_density))) if len(per_density) > 1 else np.nan,
        "coverage_stat_rep": float(np.mean(miss <= stat_rep)),
        "mean_abs_pull": float(np.mean(miss / total)),
        "median_rel_error": float(np.median(miss[relevant] / np.abs(truths[relevant]))),
        "median_sys_share": float(np.median(sys2 / total**2)),
        "common_bias_share_of_misses": float(common[missed].mean()) if missed.any() else 0.0,
        "complete": bool(np.all(np.isfinite(total))),
        "_per_density": per_density, "_pulls": (central - truths) / total,
        "_central": central, "_total": total,
    }


def write_outputs(cfg, inputs, budgets, metrics, out_dir: Path, timings: dict) -> list[Path]:
    rows = [{"family": f, "sigma_gev": s, **{k: v for k, v in m.items() if not k.startswith("_")}}
            for (f, s), m in metrics.items()]
    table = pd.DataFrame(rows)
    written = []
    path = out_dir / "coverage.csv"
    with atomic_output(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    written.append(path)

    path = out_dir / "coverage.md"
    lines = [f"Preset `{cfg.preset}`{' ' + ' '.join('--set ' + o for o in cfg.overrides) if cfg.overrides else ''}: "
             f"{len(cfg['ensembles'])} ensembles x {cfg['n_replicas']} replicas, N_boot = {cfg['n_boot']}. "
             f"Honest errors: coverage 68%, mean |pull| 0.80.", "",
             "| family | σ | densities | coverage of σ_tot | coverage σ_stat⊕σ_rep only | mean \\|pull\\| "
             "| median rel. error | median Σ² share | misses common to all ensembles |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        flag = "" if r["complete"] else " (σ_tot incomplete)"
        lines.append(f"| {r['family']} | {r['sigma_gev']} | {r['n_densities']} | {100 * r['coverage']:.0f}% "
                     f"± {100 * r['coverage_err']:.0f}%{flag} | {100 * r['coverage_stat_rep']:.0f}% "
                     f"| {r['mean_abs_pull']:.2f} | {100 * r['median_rel_error']:.1f}% "
                     f"| {100 * r['median_sys_share']:.0f}% | {100 * r['common_bias_share_of_misses']:.0f}% |")
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    written.append(path)

    per_density = []
    for (family, sigma_gev), m in metrics.items():
        for d, cov in zip(inputs[family][0], m["_per_density"]):
            params = dict(d.parameters)
            params.pop("coefficients", None)
            per_density.append({"family": family, "index": d.index, "sigma_gev": sigma_gev, "coverage": cov,
                                "mean_abs_pull": float(np.mean(np.abs(m["_pulls"][d.index]))),
                                "parameters": json.dumps(params)})
    path = out_dir / "densities.csv"
    with atomic_output(path) as tmp:
        pd.DataFrame(per_density).to_csv(tmp, index=False, float_format="%.6g")
    written.append(path)

    path = out_dir / "validation.hdf5"
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5["energies"] = cfg.energies
            for family, (densities, _) in inputs.items():
                g = h5.create_group(family)
                g["correlators"] = np.stack([d.correlator for d in densities])
                g.attrs["parameters"] = json.dumps([d.parameters for d in densities])
                for sigma_gev in cfg["sigmas_gev"]:
                    gs = g.create_group(f"sigma_{sigma_gev}")
                    gs["truth"] = np.stack([d.truth[sigma_gev] for d in densities])
                    for c in ("central", *bud.COMPONENTS, "total"):
                        gs[c] = np.stack([b.component(c) for b in budgets[family][sigma_gev]])
            write_attrs(h5, provenance(cfg, what="validate_coverage", timings=json.dumps(timings),
                                       table=table.to_json(orient="records")))
    written.append(path)
    return written


def plot_pulls(cfg, metrics, families, path: Path) -> None:
    sigmas = cfg["sigmas_gev"]
    fig, axes = plt.subplots(len(sigmas), len(families), figsize=(3.2 * len(families), 2.8 * len(sigmas)),
                             sharex=True, squeeze=False)
    bins = np.linspace(-5, 5, 41)
    x = np.linspace(-5, 5, 201)
    for i, s in enumerate(sigmas):
        for j, f in enumerate(families):
            m, ax = metrics[(f, s)], axes[i, j]
            pulls = m["_pulls"].ravel()
            clipped = np.clip(pulls[np.isfinite(pulls)], -4.99, 4.99)
            ax.hist(clipped, bins=bins, density=True, color="tab:blue", alpha=0.7, label="pulls (clipped to ±5)")
            ax.plot(x, np.exp(-x**2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
            ax.set_title(f"{f}, σ={s}\ncoverage {100 * m['coverage']:.0f}%, <|pull|> {m['mean_abs_pull']:.2f}",
                         fontsize=8)
            if i == len(sigmas) - 1:
                ax.set_xlabel(r"pull $(\bar\rho - \rho_{\rm true})/\sigma_{\rm tot}$", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"pull histograms, preset {cfg.preset}, {metrics[(families[0], sigmas[0])]['n_densities']} "
                 f"densities per family x {len(cfg.energies)} energies", fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_coverage_vs_energy(cfg, metrics, families, path: Path) -> None:
    """Coverage of σ_tot per energy (over the densities of a family): where do the errors fail?"""
    fig, axes = plt.subplots(1, len(cfg["sigmas_gev"]), figsize=(5.5 * len(cfg["sigmas_gev"]), 3.6),
                             sharey=True, squeeze=False)
    for ax, s in zip(axes[0], cfg["sigmas_gev"]):
        for f in families:
            covered = np.abs(metrics[(f, s)]["_pulls"]) <= 1
            ax.plot(cfg.energies, covered.mean(axis=0), lw=1.2, label=f)
        ax.axhline(HONEST_COVERAGE, color="k", ls="--", lw=0.8, label="68%")
        ax.set(xlabel="E (lattice units)", title=f"σ = {s}", ylim=(0, 1.02))
    axes[0, 0].set_ylabel(r"share of densities with $|\bar\rho - \rho_{\rm true}| \leq \sigma_{\rm tot}$")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_examples(cfg, inputs, metrics, families, sigma_gev, path: Path) -> None:
    fig, axes = plt.subplots(1, len(families), figsize=(3.4 * len(families), 3.0), squeeze=False)
    E = cfg.energies
    for ax, f in zip(axes[0], families):
        m, d = metrics[(f, sigma_gev)], inputs[f][0][0]
        c, t = m["_central"][0], m["_total"][0]
        ax.plot(E, d.truth[sigma_gev], "k-", lw=1.2, label="exact truth")
        ax.plot(E, c, color="tab:red", lw=1, label="audience")
        ax.fill_between(E, c - t, c + t, color="tab:red", alpha=0.25, label=r"$\pm\sigma_{\rm tot}$")
        ax.set_title(f"{f} #0: coverage {100 * m['_per_density'][0]:.0f}%", fontsize=8)
        ax.set_xlabel("E (lattice units)", fontsize=8)
    axes[0, 0].set_ylabel(rf"$\rho_\sigma(E)$, σ = {sigma_gev}", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--n-per-family", type=int, default=30, help="densities per family (default 30)")
    parser.add_argument("--families", default=",".join(validation.FAMILIES),
                        help=f"comma-separated subset of {','.join(validation.FAMILIES)}")
    parser.add_argument("--no-train", action="store_true", help="stop if the audience is not trained yet")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        cfg = config_from_args(args)
        families = [f for f in args.families.split(",") if f]
        unknown = sorted(set(families) - set(validation.FAMILIES))
        if unknown:
            raise ConfigError(f"unknown families {unknown}; expected some of {validation.FAMILIES}")
        noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    except (ConfigError, InputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    timings = {}
    ensure_audience(cfg, train=not args.no_train)
    timings["audience_s"] = time.perf_counter() - start

    t0 = time.perf_counter()
    print(f"drawing {args.n_per_family} densities per family, {cfg['n_boot']} noisy samples each:")
    inputs = draw_inputs(cfg, families, args.n_per_family, noise)
    timings["densities_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    device = select_device()
    predictions = predict_everything(cfg, inputs, device)
    timings["prediction_s"] = time.perf_counter() - t0
    n_samples = sum(s.shape[0] * s.shape[1] for _, s in inputs.values())
    print(f"predicted {n_samples} samples x {len(cfg['ensembles'])} ensembles x {len(cfg['sigmas_gev'])} "
          f"sigmas on {device} in {timings['prediction_s']:.1f} s")

    t0 = time.perf_counter()
    budgets = {f: budgets_of(cfg, predictions, f, len(inputs[f][0])) for f in families}
    metrics = {(f, s): family_metrics(np.stack([d.truth[s] for d in inputs[f][0]]), budgets[f][s])
               for f in families for s in cfg["sigmas_gev"]}
    out_dir = cfg.path("results") / "validation"
    timings["budget_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start
    written = write_outputs(cfg, inputs, budgets, metrics, out_dir, timings)
    plot_pulls(cfg, metrics, families, out_dir / "pulls.png")
    plot_coverage_vs_energy(cfg, metrics, families, out_dir / "coverage_vs_energy.png")
    written += [out_dir / "pulls.png", out_dir / "coverage_vs_energy.png"]
    for s in cfg["sigmas_gev"]:
        plot_examples(cfg, inputs, metrics, families, s, out_dir / f"examples_sigma{s}.png")
        written.append(out_dir / f"examples_sigma{s}.png")
    for path in written:
        print(f"wrote {path}")
    print()
    print((out_dir / "coverage.md").read_text())
    low = [(f, s) for (f, s), m in metrics.items()
           if m["coverage"] + 2 * np.nan_to_num(m["coverage_err"]) < HONEST_COVERAGE]
    for f, s in low:
        m = metrics[(f, s)]
        print(f"NOTE: {f} at sigma={s}: coverage {100 * m['coverage']:.0f}% is clearly below 68% "
              f"(more than 2 standard errors); with σ_stat⊕σ_rep alone it would be "
              f"{100 * m['coverage_stat_rep']:.0f}%")
    print(f"total wall time {time.perf_counter() - start:.0f} s "
          f"(audience {timings['audience_s']:.0f} s, exact densities {timings['densities_s']:.0f} s, "
          f"prediction {timings['prediction_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

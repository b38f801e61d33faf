"""Which method gives the more accurate result with errors one can trust, and at what cost?  The
audience against the methods the field uses instead (peers.py: HLT, GP, MEM, NN-P2P), all on the
same level-1 closure tests of the validation families (docs/validation.md#peers).

    pip install -r requirements-peers.txt                  # lsdensities, fredipy (optional packages)
    python benchmarks/compare_methods.py --preset demo --root AUDIENCE --out DIR [--audience-seeds 3]
        [--families breit_wigner,...] [--n-per-family 5] [--measurements 2] [--sigmas 0.44,0.63]
        [--methods audience,hlt,gp,mem,nn_p2p] [--hlt-energy-stride 4] [--workers 2]
        [--training-seconds S] [--report-only]

1. The test set: for each family of validation.py, n densities with exact correlators and truths,
   each measured R times with N_boot samples around each measurement: the level-1 draws of
   validate_coverage.py (its draw_inputs, the same streams: the same samples as that study).
2. Every method on every (family, σ, density, measurement): the audience (peers.Audience, for each
   of the K audiences: its paper result and, with a calibration, its calibrated one) and each peer
   (peers.solve) through the one interface peers.Problem -> peers.Result.  HLT costs 10-30 s per
   energy, so it runs at every ``--hlt-energy-stride``-th energy of the grid and is scored there.
   Each (method, family, σ, density) is one part, written atomically to DIR/parts/<method>/ as
   JSON (its results per measurement, its settings, its provenance): a killed run resumes where it
   stopped, and the campaign can run in pieces (per method, per family) and be reported together.
   A part made with other settings or a different test set is recomputed.
3. The scores, per method, family and σ, over the family's densities and measurements (closure.py):
   coverage (± its error over densities), mean |pull|, R_bv, CRPS of N(centre, σ²), sharpness,
   the verdict, the median relative error of the centre (validate_coverage.median_relative_error),
   the mean χ²/k with the method's covariance where it has one (covariance.chi2), and the median
   wall time per correlator on one core (the process runs with one thread: run it with
   OMP_NUM_THREADS=1 or let it set it; torch too).  For the audiences: each audience scored alone,
   then mean ± spread (ddof = 1) over them; beside its per-correlator time, the one-off cost of
   loading the networks and, if given (--training-seconds), of training them.

Writes to DIR: methods.csv (one row per method, audience, family and σ), methods_summary.csv (the
audiences averaged), rows.csv (one row per method, family, σ, density and measurement: coverage,
mean |pull|, CRPS, relative error, χ², seconds), methods.md (every family), <family>.md and
<family>.png (per family: the table; coverage, CRPS and cost per method, and one reconstruction
per method), and parts/.  Every file records how it was made (the parts and the markdown the
code version and settings; the CSVs are derived from the parts).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):    # one core per method run
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from validate_coverage import audience_configs, chi2_figures, draw_inputs, median_relative_error  # noqa: E402

import closure  # noqa: E402
import covariance as cv  # noqa: E402
import peers  # noqa: E402
import validation  # noqa: E402
from cli import main_guard  # noqa: E402
from config import ConfigError, add_common_args, config_from_args  # noqa: E402
from figures import plt, save_png  # noqa: E402
from io_utils import InputError, atomic_output, code_version, fingerprint  # noqa: E402
from noise_files import load_noise_file  # noqa: E402

FIGURES = ("coverage", "coverage_err", "mean_abs_pull", "r_bv", "crps", "sharpness", "centre_rel_error",
           "chi2_per_dof", "seconds_per_correlator")
# the figures in the tables, with how they are printed: (column title, percent, digits)
SHOWN = {"coverage": ("coverage", True, 0), "mean_abs_pull": ("mean \\|pull\\|", False, 2),
         "crps": ("CRPS", False, 4), "sharpness": ("sharpness", False, 3),
         "centre_rel_error": ("median rel. error of the centre", True, 1), "chi2_per_dof": ("χ²/k", False, 1),
         "seconds_per_correlator": ("s per correlator (1 core)", False, 2)}
GOAL = (0.60, 0.90)       # the calibrated audience should have the lowest CRPS with coverage in this range


# --- 1-2. the parts ---------------------------------------------------------------------------------------
def part_path(out: Path, method: str, family: str, sigma_gev: float, index: int) -> Path:
    return out / "parts" / method / f"{family}_sigma{sigma_gev}_d{index}.json"


def made_of(cfg, method: str, family: str, sigma_gev: float, index: int, n_meas: int, pick) -> str:
    """What a part depends on: the test set's settings (seed, kernel, slices, noise, N_boot), the
    density, the measurements, the energies and the method's settings (an audience: its root)."""
    settings = (str(cfg.root) if method.startswith("audience") else
                peers.PEERS[method].settings(float(cfg["E0_min"])))
    keys = {k: cfg[k] for k in ("seed", "kernel", "T", "t_min", "t_max", "n_boot", "noise_file", "E0_min")}
    return fingerprint({"test_set": json.dumps(keys, default=str), "family": family, "sigma": sigma_gev,
                        "index": index, "measurements": n_meas, "pick": list(map(int, pick)), "method": settings})


def read_part(path: Path, made: str) -> dict | None:
    """A part's record, or None if it is missing or was made of something else."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if record.get("made_of") == made else None


def write_part(path: Path, record: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record))


def row_record(result: peers.Result) -> dict:
    return {"central": result.central.tolist(), "error": result.error.tolist(),
            "covariance": None if result.covariance is None else result.covariance.tolist(),
            "seconds": result.seconds,
            "details": {k: v for k, v in result.details.items() if np.ndim(v) == 0}}


def _peer_job(job):
    cfg, method, family, sigma_gev, index, samples, pick, path, made = job
    if read_part(path, made) is not None:        # made meanwhile by another run of the campaign
        return method, family, sigma_gev, index, 0.0
    rows = [row_record(peers.solve(method, peers.problem(cfg, s, sigma_gev, pick))) for s in samples]
    write_part(path, {"made_of": made, "method": method, "family": family, "sigma_gev": sigma_gev, "index": index,
                      "pick": list(map(int, pick)), "settings": peers.PEERS[method].settings(float(cfg["E0_min"])),
                      "code_version": code_version(), "rows": rows})
    return method, family, sigma_gev, index, sum(r["seconds"] for r in rows)


def run_audience(cfg, out: Path, inputs: dict, sigmas, seed_label: str, log=print) -> dict:
    """Every correlator through one audience (each σ loaded once); its parts written. Returns the
    one-off seconds of loading the networks per σ."""
    loading = {}
    pick = np.arange(len(cfg.energies))
    for sigma_gev in sigmas:
        audience = None
        for family, (densities, _, samples) in inputs.items():
            for i, d in enumerate(densities):
                path = part_path(out, seed_label, family, sigma_gev, d.index)
                made = made_of(cfg, seed_label, family, sigma_gev, d.index, samples[1].shape[1], pick)
                if read_part(path, made) is not None:
                    continue
                if audience is None:
                    audience = peers.Audience(cfg, sigma_gev)
                    loading[sigma_gev] = audience.load_seconds
                rows = {name: [] for name in audience.methods}
                for s in samples[1][i]:
                    for name, result in audience(peers.problem(cfg, s, sigma_gev)).items():
                        rows[name].append(row_record(result))
                write_part(path, {"made_of": made, "method": seed_label, "family": family, "sigma_gev": sigma_gev,
                                  "index": d.index, "pick": pick.tolist(), "audience_root": str(cfg.root),
                                  "load_seconds": audience.load_seconds, "code_version": code_version(),
                                  "rows": rows})
            log(f"  {seed_label} sigma={sigma_gev} {family}: done")
    return loading


# --- 3. the scores -----------------------------------------------------------------------------------
def score(central, truth, error, groups, covariances=None, seconds=None) -> dict:
    """The figures of one method over rows [rows, N_E] of one family and σ (closure.py's conventions;
    rows of one ``groups`` entry are measurements of one density)."""
    stats = closure.closure_statistics(central, truth, error, groups)
    out = {**closure.error_figures(central, truth, error, groups), "verdict": stats.verdict,
           "centre_rel_error": median_relative_error(central, truth), "n_rows": len(central),
           "n_densities": stats.n_groups}
    chi2 = (np.array([cv.chi2(c, t, k) for c, t, k in zip(central, truth, covariances)], dtype=float)
            if covariances is not None else np.full((len(central), 2), np.nan))
    out["chi2_per_dof"] = chi2_figures(chi2)["chi2_per_dof"]
    out["seconds_per_correlator"] = float(np.median(seconds)) if seconds is not None else np.nan
    return out


def collect(cfg, out: Path, inputs: dict, sigmas, methods: list[str], audiences: dict, hlt_pick) -> tuple:
    """(per method/audience, family and σ: the scores; per row: its figures) from the parts;
    ``audiences`` {label: the audience's configuration}."""
    seeds = list(audiences)
    summaries, rows = [], []
    for family, (densities, _, samples) in inputs.items():
        n_meas = samples[1].shape[1]
        for sigma_gev in sigmas:
            truths = np.stack([d.truth[sigma_gev] for d in densities])
            for method in [*seeds, *methods]:
                pick = hlt_pick if method == "hlt" else np.arange(len(cfg.energies))
                owner = audiences.get(method, cfg)
                records = [read_part(part_path(out, method, family, sigma_gev, d.index),
                                     made_of(owner, method, family, sigma_gev, d.index, n_meas, pick))
                           for d in densities]
                if any(r is None for r in records):
                    continue
                names = (list(records[0]["rows"]) if method in seeds else [method])
                for name in names:
                    per = [r["rows"][name] if method in seeds else r["rows"] for r in records]
                    central = np.array([m["central"] for p in per for m in p])
                    error = np.array([m["error"] for p in per for m in p])
                    truth = np.repeat(truths[:, pick], n_meas, axis=0)
                    groups = np.repeat(np.arange(len(densities)), n_meas)
                    covs = ([np.array(m["covariance"]) for p in per for m in p]
                            if per[0][0]["covariance"] is not None else None)
                    seconds = np.array([m["seconds"] for p in per for m in p])
                    label = name
                    figures = score(central, truth, error, groups, covs, seconds)
                    summaries.append({"method": label, "audience": method if method in seeds else "",
                                      "family": family, "sigma_gev": sigma_gev, "energies": len(pick),
                                      "load_seconds": records[0].get("load_seconds", np.nan), **figures})
                    for j in range(len(central)):
                        covered = np.abs(central[j] - truth[j]) <= error[j]
                        rows.append({"method": label, "audience": method if method in seeds else "",
                                     "family": family, "sigma_gev": sigma_gev, "density": int(groups[j]),
                                     "measurement": j % n_meas, "coverage": float(covered.mean()),
                                     "mean_abs_pull": float(np.mean(np.abs(central[j] - truth[j]) / error[j])),
                                     "crps": closure.crps(central[j], truth[j], error[j]),
                                     "rel_error": median_relative_error(central[j][None], truth[j][None]),
                                     "chi2_per_dof": (lambda x: x[0] / x[1] if x[1] else np.nan)(
                                         cv.chi2(central[j], truth[j], covs[j])) if covs is not None else np.nan,
                                     "seconds": float(seconds[j])})
    return pd.DataFrame(summaries), pd.DataFrame(rows)


def over_audiences(table: pd.DataFrame) -> pd.DataFrame:
    """One row per method, family and σ: the peers as they are, each audience method's figures
    averaged over the audiences (mean, and spread with ddof = 1 as <figure>_spread)."""
    out = []
    for (method, family, sigma_gev), g in table.groupby(["method", "family", "sigma_gev"], sort=False):
        row = {"method": method, "family": family, "sigma_gev": sigma_gev, "n_audiences": len(g),
               "energies": int(g["energies"].iloc[0]), "n_densities": int(g["n_densities"].iloc[0]),
               "n_rows": int(g["n_rows"].iloc[0]), "verdict": "; ".join(sorted(set(g["verdict"]))),
               "load_seconds": float(g["load_seconds"].mean())}
        for f in FIGURES:
            values = g[f].to_numpy(dtype=float)
            row[f] = float(np.mean(values))
            row[f"{f}_spread"] = float(np.std(values, ddof=1)) if len(values) > 1 else np.nan
        out.append(row)
    return pd.DataFrame(out)


def label_of(method: str) -> str:
    return peers.AUDIENCE_METHODS.get(method) or peers.PEERS[method].label


def _cell(r, figure: str) -> str:
    _, percent, digits = SHOWN[figure]
    scale, unit = (100, " %") if percent else (1, "")
    value, spread = r[figure] * scale, r[f"{figure}_spread"] * scale
    if not np.isfinite(value):
        return "–"
    text = f"{value:.{digits}f}" if digits or percent else f"{value:.0f}"
    if r["n_audiences"] > 1 and np.isfinite(spread):
        text += f" ± {spread:.{digits}f}"
    return text + unit


def winner(g: pd.DataFrame) -> str:
    """The method with the lowest CRPS (among those scored at every energy: HLT's subset is not
    comparable), and whether the calibrated audience (else the paper's) wins with coverage in GOAL."""
    full = g[g["energies"] == g["energies"].max()]
    best = full.loc[full["crps"].idxmin()]
    audience = "audience_calibrated" if "audience_calibrated" in set(g["method"]) else "audience"
    a = g[g["method"] == audience]
    if a.empty:
        return f"lowest CRPS: {label_of(best['method'])}"
    a = a.iloc[0]
    in_goal = GOAL[0] <= a["coverage"] <= GOAL[1]
    if best["method"] == audience:
        return (f"lowest CRPS: {label_of(audience)}, coverage {100 * a['coverage']:.0f} % "
                f"{'within' if in_goal else 'outside'} [{100 * GOAL[0]:.0f}, {100 * GOAL[1]:.0f}] %"
                + ("" if in_goal else " (goal missed)"))
    return (f"lowest CRPS: **{label_of(best['method'])}** ({best['crps']:.4f} against the {label_of(audience)}'s "
            f"{a['crps']:.4f}): goal missed")


def family_markdown(cfg, summary: pd.DataFrame, family: str, header: list[str]) -> str:
    lines = [f"### {family}" + (" (held out from the calibration space)"
                                 if validation.held_out_from_calibration(cfg, family) else ""), ""]
    cols = list(SHOWN)
    lines += ["| σ | method | " + " | ".join(SHOWN[c][0] for c in cols) + " | verdict |",
              "|---|---|" + "---|" * (len(cols) + 1)]
    f = summary[summary["family"] == family]
    verdicts = []
    for sigma_gev, g in f.groupby("sigma_gev", sort=False):
        for _, r in g.iterrows():
            lines.append(f"| {sigma_gev} | {label_of(r['method'])}"
                         + ("" if r["energies"] == len(cfg.energies) else f" ({r['energies']} energies)")
                         + " | " + " | ".join(_cell(r, c) for c in cols) + f" | {r['verdict']} |")
        verdicts.append(f"σ = {sigma_gev}: {winner(g)}.")
    return "\n".join(header + lines + ["", *verdicts, ""])


def header_lines(cfg, args, seeds, settings: dict, load: dict) -> list[str]:
    lines = [f"Preset `{cfg.preset}`{''.join(' --set ' + o for o in cfg.overrides)}, kernel {cfg['kernel']}, "
             f"N_boot = {cfg['n_boot']}, slices t = {cfg['t_min']}..{cfg['t_max']}, {len(cfg.energies)} energies; "
             f"level-1 closure test: {args.n_per_family} densities per family × {args.measurements} measurements "
             f"(validate_coverage.py's draws); code {code_version()}. Audiences: {', '.join(seeds) or 'none'} "
             "(figures: mean ± spread over them). Coverage of ±1 error (68 % for honest errors), mean |pull| "
             "(0.80), CRPS of N(centre, error²) in the units of ρ_σ (lower is better), sharpness = median error / "
             "max|truth|, median relative error of the centre where |truth| ≥ 10 % of its maximum, χ²/k with the "
             "method's covariance (1 when honest; – without one), median wall time per correlator on one core.",
             "", "Settings:", ""]
    lines += [f"- {label_of(m)}: {text}" for m, text in settings.items()]
    if load:
        training = f"{load['training']:.0f} s" if np.isfinite(load["training"]) else "not given (--training-seconds)"
        lines.append(f"- the audiences' one-off costs: loading the networks {load['load']:.1f} s per σ; training "
                     f"{training}")
    return lines + [""]


def plot_family(cfg, summary: pd.DataFrame, inputs: dict, out: Path, family: str, examples: dict, path: Path):
    """Per σ: coverage and CRPS per method (bars, the audiences' spread as error bars), the cost per
    correlator, and density 0, measurement 0 of the family with every method's band."""
    f = summary[summary["family"] == family]
    sigmas = list(dict.fromkeys(f["sigma_gev"]))
    fig, axes = plt.subplots(len(sigmas), 4, figsize=(17, 3.4 * len(sigmas)), squeeze=False)
    for row, sigma_gev in zip(axes, sigmas):
        g = f[f["sigma_gev"] == sigma_gev]
        names = [label_of(m) for m in g["method"]]
        x = np.arange(len(g))
        for ax, figure, title in ((row[0], "coverage", "coverage"), (row[1], "crps", "CRPS (lower is better)"),
                                  (row[2], "seconds_per_correlator", "s per correlator, 1 core")):
            ax.bar(x, g[figure], yerr=g[f"{figure}_spread"].fillna(0), color=[f"C{j}" for j in x])
            ax.set_xticks(x, names, rotation=35, ha="right", fontsize=7)
            ax.set_title(f"{family}, σ = {sigma_gev}: {title}", fontsize=8)
        row[0].axhline(closure.HONEST_COVERAGE, color="k", lw=0.8)
        row[0].axhspan(*GOAL, color="0.9", zorder=0)
        row[2].set_yscale("log")
        d = inputs[family][0][0]
        row[3].plot(cfg.energies, d.truth[sigma_gev], "k-", lw=1.4, label="exact truth")
        for j, (method, (E, c, e)) in enumerate(examples.get(sigma_gev, {}).items()):
            row[3].plot(E, c, color=f"C{j}", lw=1, label=label_of(method))
            row[3].fill_between(E, c - e, c + e, color=f"C{j}", alpha=0.15)
        row[3].set_title(f"density 0, measurement 0, σ = {sigma_gev}", fontsize=8)
        row[3].set_xlabel("E (lattice units)", fontsize=8)
        row[3].legend(fontsize=6)
    fig.tight_layout()
    save_png(fig, path, dpi=100)


def example_bands(cfg, out: Path, inputs, family, sigmas, methods, seeds, hlt_pick) -> dict:
    """{σ: {method: (E, centre, error)}} of density 0, measurement 0 (the first audience only)."""
    bands = {}
    d = inputs[family][0][0]
    for sigma_gev in sigmas:
        for method in [*seeds[:1], *methods]:
            path = part_path(out, method, family, sigma_gev, d.index)
            if not path.is_file():
                continue
            record = json.loads(path.read_text())
            pick = np.array(record["pick"])
            for name, rows in (record["rows"].items() if method in seeds else [(method, record["rows"])]):
                bands.setdefault(sigma_gev, {})[name] = (cfg.energies[pick], np.array(rows[0]["central"]),
                                                         np.array(rows[0]["error"]))
    return bands


def report(cfg, args, out: Path, inputs: dict, sigmas, methods, audiences: dict, hlt_pick,
           training_seconds) -> list[Path]:
    seeds = list(audiences)
    table, rows = collect(cfg, out, inputs, sigmas, methods, audiences, hlt_pick)
    if table.empty:
        raise InputError(out / "parts", None, "no complete (method, family, σ) yet: run without --report-only")
    summary = over_audiences(table)
    written = []
    for name, frame in (("methods.csv", table), ("methods_summary.csv", summary), ("rows.csv", rows)):
        with atomic_output(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        written.append(out / name)
    settings = {m: peers.PEERS[m].settings(float(cfg["E0_min"])) for m in methods}
    load = ({"load": float(table.loc[table["audience"] != "", "load_seconds"].mean()), "training": training_seconds}
            if seeds else {})
    header = header_lines(cfg, args, seeds, settings, load)
    parts = []
    for family in inputs:
        if not (summary["family"] == family).any():
            continue
        text = family_markdown(cfg, summary, family, [])
        parts.append(text)
        with atomic_output(out / f"{family}.md") as tmp:
            tmp.write_text("\n".join(header) + "\n" + text)
        plot_family(cfg, summary, inputs, out, family,
                    example_bands(cfg, out, inputs, family, sigmas, methods, seeds, hlt_pick), out / f"{family}.png")
        written += [out / f"{family}.md", out / f"{family}.png"]
    with atomic_output(out / "methods.md") as tmp:
        tmp.write_text("\n".join(header) + "\n" + "\n".join(parts))
    written.append(out / "methods.md")
    return written


@main_guard
def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--out", type=Path, help="where the outputs go (default: <root>/results/methods)")
    parser.add_argument("--methods", default=",".join(["audience", *peers.PEERS]),
                        help=f"comma-separated subset of audience,{','.join(peers.PEERS)}")
    parser.add_argument("--families", default=",".join(validation.FAMILIES),
                        help=f"comma-separated subset of {','.join(validation.FAMILIES)}")
    parser.add_argument("--n-per-family", type=int, default=5, help="densities per family (default 5)")
    parser.add_argument("--measurements", type=int, default=2, help="level-1 measurements per density (default 2)")
    parser.add_argument("--sigmas", help="comma-separated subset of the preset's σ (default: all)")
    parser.add_argument("--audience-seeds", type=int, default=1, help="audiences (validate_coverage.py's convention)")
    parser.add_argument("--hlt-energy-stride", type=int, default=4, help="HLT at every n-th energy (default 4)")
    parser.add_argument("--workers", type=int, default=1, help="peer runs side by side, one core each (default 1)")
    parser.add_argument("--training-seconds", type=float, default=float("nan"),
                        help="the audience's one-off training cost, for the tables (not measured here)")
    parser.add_argument("--report-only", action="store_true", help="only report the parts already made")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cfg = config_from_args(args)
    methods = [m for m in args.methods.split(",") if m]
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(methods) - {"audience", *peers.PEERS}) + sorted(set(families) - set(validation.FAMILIES))
    if unknown:
        raise ConfigError(f"unknown methods or families {unknown}; expected audience,{','.join(peers.PEERS)} "
                          f"and {','.join(validation.FAMILIES)}")
    if args.n_per_family < 2 or args.measurements < 1:
        raise ConfigError("--n-per-family ≥ 2 and --measurements ≥ 1 (the scores need a spread over densities)")
    sigmas = [float(s) for s in args.sigmas.split(",")] if args.sigmas else list(cfg["sigmas_gev"])
    if set(sigmas) - set(cfg["sigmas_gev"]):
        raise ConfigError(f"--sigmas {args.sigmas}: expected some of {cfg['sigmas_gev']}")
    peers.check_kernel(cfg["kernel"])
    missing = [m for m in methods if m in peers.PEERS and not peers.available(m)]
    if missing:
        raise ConfigError(f"the peers {missing} need their packages: pip install -r requirements-peers.txt")
    out = args.out or cfg.path("results") / "methods"
    audiences = audience_configs(cfg, args.audience_seeds) if "audience" in methods else []
    seeds = [f"audience_seed{a['seed']}" for a in audiences]
    peer_methods = [m for m in methods if m in peers.PEERS]
    hlt_pick = np.arange(0, len(cfg.energies), max(1, args.hlt_energy_stride))
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    print(f"drawing {args.n_per_family} densities x {args.measurements} measurements per family:")
    inputs = draw_inputs(cfg, families, args.n_per_family, args.measurements, noise)
    if not args.report_only:
        for audience, label in zip(audiences, seeds):
            run_audience(audience, out, inputs, sigmas, label)
        jobs = []
        for method in peer_methods:
            pick = hlt_pick if method == "hlt" else np.arange(len(cfg.energies))
            for family, (densities, _, samples) in inputs.items():
                for sigma_gev in sigmas:
                    for i, d in enumerate(densities):
                        path = part_path(out, method, family, sigma_gev, d.index)
                        made = made_of(cfg, method, family, sigma_gev, d.index, args.measurements, pick)
                        if read_part(path, made) is None:
                            jobs.append((cfg, method, family, sigma_gev, d.index, samples[1][i], pick, path, made))
        print(f"{len(jobs)} peer part(s) to run ({args.workers} worker(s)); finished parts are kept", flush=True)
        if jobs:
            with multiprocessing.get_context("fork").Pool(args.workers) as pool:
                for method, family, sigma_gev, index, seconds in pool.imap_unordered(_peer_job, jobs):
                    print(f"  {method} {family} sigma={sigma_gev} density {index}: {seconds:.1f} s", flush=True)
    written = report(cfg, args, out, inputs, sigmas, peer_methods, dict(zip(seeds, audiences)), hlt_pick,
                     args.training_seconds)
    for path in written:
        print(f"wrote {path}")
    print()
    print((out / "methods.md").read_text())
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

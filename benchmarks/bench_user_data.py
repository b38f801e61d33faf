"""Benchmark of many users' correlators: one call per file against one call for all of them.

    python benchmarks/bench_user_data.py [--n 100] [--baseline 10] [--configurations 200]
                                         [--preset demo --set ... --root DIR]

Predicts and analyses N synthetic correlators with the trained audience under --root (the
preset's; train it first), the two scripts run as a user runs them, each a fresh process:

- baseline: one call per file, as the user-data page showed it before several files could be
  given: ``predict_on_user_data.py FILE --name NAME`` then ``analyze_user_data.py --name NAME``
  (plots drawn, the only way those calls had).  Run on the first ``--baseline`` correlators; its
  time per correlator is what is compared (a loop of independent calls has no other dependence
  on N);
- batch: ``predict_on_user_data.py FILE1 ... FILEN`` then ``analyze_user_data.py FILE1 ...
  FILEN``, with ``--no-plots`` and with the plots.

Every measurement starts without outputs (those of the benchmark's correlators are removed before
it; nothing is up to date), and the batch's files are checked to be all there.  The correlators
are N independent ensembles of ``--configurations`` configurations drawn from the preset's noise
file (the stand-in by default: C_latt and √N_cfg·chol(Σ_latt) per configuration), written in the
users' HDF5 layout to a temporary folder; they are named bench_user_0000, ...  Each time is the
wall-clock time and, in brackets, the CPU time of the calls and the processes they start (what
other jobs on shared cores inflate least).  The CPU, the cores this process may use, the torch
threads (OMP_NUM_THREADS; on shared cores 1 avoids threads waiting for each other) and the load
average (before and after) are printed with the figures.
"""
import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import exports  # noqa: E402
from config import add_common_args, config_from_args  # noqa: E402
from noise_files import load_noise_file  # noqa: E402

PREFIX = "bench_user_"


def cpu() -> str:
    """The CPU model, the cores this process may use and the load average."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    threads = os.environ.get("OMP_NUM_THREADS", "not set: torch's default")
    return f"CPU {model}, {len(os.sched_getaffinity(0))} core(s) usable, OMP_NUM_THREADS {threads}; {load()}"


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg())


def write_correlators(cfg, folder: Path, n: int, n_cfg: int) -> list[Path]:
    """N files of ``n_cfg`` per-configuration correlators from the preset's noise file."""
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    paths = []
    for i in range(n):
        z = np.random.default_rng(i).standard_normal((n_cfg, cfg.n_t))
        configs = noise.mean + np.sqrt(n_cfg) * z @ noise.chol.T
        path = folder / f"{PREFIX}{i:04d}.h5"
        with h5py.File(path, "w") as h5:
            h5["t"] = cfg.t
            h5["samples"] = configs
            h5.attrs.update(sample_kind="configurations", kernel=cfg["kernel"], T=cfg["T"])
        paths.append(path)
    return paths


def outputs(cfg) -> list[Path]:
    """The benchmark's prediction and result files under --root."""
    return [*cfg.root.glob(f"mock_predictions_sigma*/{PREFIX}*"), *cfg.path("results").glob(f"{PREFIX}*")]


def remove_outputs(cfg) -> None:
    for path in outputs(cfg):
        path.unlink()


def cpu_seconds() -> float:
    """The CPU time (user + system) of this process's finished children and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(script: str, args: list, log) -> np.ndarray:
    """[wall, CPU] seconds of one call of ``script`` (a fresh process, with the processes it
    starts), its output appended to ``log``."""
    start, cpu_start = time.perf_counter(), cpu_seconds()
    call = [sys.executable, str(REPO / script), *map(str, args)]
    status = subprocess.run(call, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = np.array([time.perf_counter() - start, cpu_seconds() - cpu_start])
    if status != 0:
        raise SystemExit(f"{script} {' '.join(map(str, args[:3]))} ... exited with status {status}: see {log.name}")
    return seconds


def expected_files(cfg, n: int, plots: bool) -> int:
    """The files N correlators give: per σ, a prediction file per run, the three tables, the
    exports installed, and the four plots."""
    runs = len(cfg["ensembles"]) + (1 if cfg["interval_networks"] else 0)
    return n * len(cfg["sigmas_gev"]) * (runs + 3 + len(exports.available()) + (4 if plots else 0))


def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--n", type=int, default=100, help="correlators of the batch (default 100)")
    parser.add_argument("--baseline", type=int, default=10,
                        help="correlators of the one-call-per-file loop (default 10)")
    parser.add_argument("--configurations", type=int, default=200, help="configurations per correlator")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    common = ["--preset", cfg.preset, "--root", str(cfg.root)] + [a for o in cfg.overrides for a in ("--set", o)]
    print(cpu())
    print(f"{args.n} correlators of {args.configurations} configurations, preset {cfg.preset} "
          f"{' '.join(cfg.overrides)} ({len(cfg['ensembles'])} ensembles x {cfg['n_replicas']} replicas x "
          f"{len(cfg['sigmas_gev'])} σ, N_boot = {cfg['n_boot']}, interval networks: {cfg['interval_networks']}), "
          f"root {cfg.root}")
    folder = Path(tempfile.mkdtemp(prefix="bench_user_data_"))
    rows = []
    try:
        files = write_correlators(cfg, folder, max(args.n, args.baseline), args.configurations)
        with open(folder / "calls.log", "w") as log:
            remove_outputs(cfg)
            predict, analyse = [], []
            for path in files[:args.baseline]:
                predict.append(run("predict_on_user_data.py", [path, "--name", path.stem] + common, log))
                analyse.append(run("analyze_user_data.py", ["--name", path.stem] + common, log))
            rows.append((f"one call per file ({args.baseline}), plots", args.baseline, sum(predict), sum(analyse)))
            batch = [str(p) for p in files[:args.n]]
            for plots in (False, True):
                remove_outputs(cfg)
                seconds = (run("predict_on_user_data.py", batch + common, log),
                           run("analyze_user_data.py", batch + common + ([] if plots else ["--no-plots"]), log))
                found = len(outputs(cfg))
                if found != expected_files(cfg, args.n, plots):
                    raise SystemExit(f"the batch wrote {found} files, expected {expected_files(cfg, args.n, plots)}")
                rows.append((f"batch of {args.n}, {'plots' if plots else '--no-plots'}", args.n, *seconds))
            remove_outputs(cfg)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{'':34s} {'predict':>15s} {'analyse':>15s} {'total':>15s} {'per correlator':>15s}")
    print(f"{'[s: wall (CPU)]':34s}" + f" {'':>15s}" * 4)
    for label, n, p, a in rows:
        cells = [p, a, p + a, (p + a) / n]
        print(f"{label:34s}" + "".join(f" {w:8.1f} ({c:5.1f})" for w, c in cells))
    base = (rows[0][2] + rows[0][3]) / rows[0][1]
    for label, n, p, a in rows[1:]:
        ours = (p + a) / n
        print(f"{label}: {base[0] / ours[0]:.1f}x faster per correlator than one call per file (CPU time: "
              f"{base[1] / ours[1]:.1f}x); {args.n} correlators in {(p + a)[0] / 60:.1f} min (one call per file: "
              f"{base[0] * args.n / 60:.1f} min)")
    wall, cpu_time = np.array(analyse).T
    print(f"one analyze_user_data.py call (baseline, plots): median {statistics.median(wall):.1f} s "
          f"[{min(wall):.1f}, {max(wall):.1f}], CPU {statistics.median(cpu_time):.1f} s; one "
          f"predict_on_user_data.py call: median {statistics.median(np.array(predict)[:, 0]):.1f} s, CPU "
          f"{statistics.median(np.array(predict)[:, 1]):.1f} s")
    print(f"after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Stage-1 generation rate, next to a plain baseline measured in the same run.

    python benchmarks/bench_generation.py                  # 20k samples per N_b, ~1 minute
    python benchmarks/bench_generation.py --nrho 400000 --nb 128   # the reference-size task
    python benchmarks/bench_generation.py --quick          # seconds, one worker: the test suite runs it

Ours: ``training_sets.generate_training_files`` end to end (exact correlators, both σ, N_noise
noisy copies, standardisation, HDF5 writes), on ``--workers`` processes; then the same for the
physical space P (physical_space.py, no N_b), with its cost per sample against each N_b's.
Baseline: what a straightforward implementation does per sample: ρ on a fixed 4000-point grid
(numpy's chebval), trapezoid rule for every C(t) and every ρ_σ(E_k), and N_noise calls of
``numpy.random.multivariate_normal``; one process.  Its error against the exact values is
printed too: the trapezoid rule on a fixed grid is not exact (the kink at E0 falls between
points).
"""
import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.polynomial import chebyshev

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sigma_model_utils as smu  # noqa: E402
import training_sets  # noqa: E402
from config import load_config  # noqa: E402
from noise_files import load_noise_file  # noqa: E402


def baseline_sample(E0, c, cfg, noise, rng, grid):
    """One sample the straightforward way: grid, trapezoids, multivariate_normal per replica."""
    rho = np.where(grid >= E0, chebyshev.chebval(smu.x_of_energy(grid), np.r_[0.0, c])
                   - chebyshev.chebval(smu.x_of_energy(E0), np.r_[0.0, c]), 0.0)
    corr = np.array([np.trapezoid(smu.kernel(t, grid, cfg["kernel"], cfg["T"]) * rho, grid) for t in cfg.t])
    targets = [np.array([np.trapezoid(smu.gaussian(E - grid, cfg.sigma(s)) * rho, grid) for E in cfg.energies])
               for s in cfg["sigmas_gev"]]
    s = float(smu.noise_scale(corr, noise))
    noisy = [rng.multivariate_normal(corr, s**2 * noise.cov) for _ in range(cfg["n_noise"])]
    return corr, targets, noisy


def generation_rate(overrides: list[str], nb, space: str, nrho: int, workers: int) -> tuple[float, float]:
    """(samples/s, wall s) of generate_training_files for one file of ``nrho`` samples: the reference
    preset with the benchmark's N_b and ensembles (no interval networks: they take the reference
    preset's ensemble Nmax, and generation does not depend on them)."""
    with tempfile.TemporaryDirectory() as root:
        cfg = load_config("reference", [f"nrho_list=[{nrho}]", "n_noise=20", "interval_networks=false", *overrides],
                          root)
        start = time.perf_counter()
        training_sets.generate_training_files(cfg, nb, workers=workers, progress=False, log=lambda m: None,
                                              space=space)
        wall = time.perf_counter() - start
    return nrho / wall, wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nb", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--nrho", type=int, default=20_000, help="samples generated per N_b (ours)")
    parser.add_argument("--baseline-samples", type=int, default=100)
    parser.add_argument("--workers", type=int, default=training_sets.default_workers())
    parser.add_argument("--quick", action="store_true",
                        help="seconds: N_b 16, 200 samples, 3 baseline samples, one worker (the test suite)")
    args = parser.parse_args(argv)
    if args.quick:
        args.nb, args.nrho, args.baseline_samples, args.workers = [16], 200, 3, 1

    print(f"{'N_b':>5} {'ours [samples/s]':>17} {'per core':>9} {'baseline/core':>14} {'ratio/core':>10} "
          f"{'wall':>7} {'peak RSS':>9} {'baseline max rel err':>21}")
    chebyshev_rates = {}
    for nb in args.nb:
        rate, wall = generation_rate([f"nb_list=[{nb}]", "ensembles={}"], nb, "chebyshev", args.nrho, args.workers)
        chebyshev_rates[nb] = rate
        cfg = load_config("reference")
        peak_gb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024**2

        noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
        rng = np.random.default_rng(0)
        E0, c = smu.sample_coefficients(rng, args.baseline_samples, nb, cfg)
        grid = np.linspace(0.0, 40.0, 4000)
        start = time.process_time()
        base = [baseline_sample(E0[i], c[i], cfg, noise, rng, grid) for i in range(len(E0))]
        base_rate = len(E0) / (time.process_time() - start)
        exact, _ = smu.correlators_and_targets(E0, c, cfg)
        err = np.max(np.abs(np.array([b[0] for b in base]) - exact) / np.abs(exact).max(axis=1, keepdims=True))
        per_core = rate / args.workers
        print(f"{nb:>5} {rate:>17.0f} {per_core:>9.0f} {base_rate:>14.1f} {per_core / base_rate:>9.0f}x "
              f"{wall:>6.1f}s {peak_gb:>8.2f}G {err:>21.1e}")
    print(f"(ours: {args.nrho} samples per N_b, N_noise=20, 2 sigmas, HDF5 written, {args.workers} "
          f"worker processes; baseline: {args.baseline_samples} samples, one process, CPU time)")

    nb = args.nb[-1]
    audience = f'ensembles={{"Nmax": {{"arch": "arcL", "nb": {nb}, "nrho": {args.nrho}}}}}'
    rate, wall = generation_rate(["space=physical", f"nb_list=[{nb}]", audience], None, "physical",
                                 args.nrho, args.workers)
    versus = ", ".join(f"{chebyshev_rates[n] / rate:.2f}x N_b={n}'s" for n in args.nb)
    print(f"physical space P: {rate:.0f} samples/s ({rate / args.workers:.0f} per core), {wall:.1f}s; "
          f"cost per sample {versus} (same run, same settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

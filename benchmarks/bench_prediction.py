"""Benchmark of stage 3: predicting N_boot = 800 samples with 5 replicas x 4 ensembles x 2 σ.

    python benchmarks/bench_prediction.py [--n-boot 800] [--baseline-samples 40] [--repeats 3]
    python benchmarks/bench_prediction.py --quick      # seconds: the test suite runs it

The audience is the reference one (method §7: Nmax, Nref_b, Nref_rho are arcL, Nref_n is arcS;
5 replicas; σ = 0.44, 0.63) with randomly initialised weights, saved as real checkpoints in a
temporary directory (timing does not depend on the weights).  Measured in the same run:

- batched: ``prediction.predict_ensemble`` -- all replicas of one ensemble predict all samples in
  one pass -- for the 8 (ensemble, σ) groups, on networks already loaded;
- baseline: a plain loop, one sample at a time through one network at a time (standardise the
  sample, ``model(x[None])``, back to numpy), as straightforward code would do.  It is timed on
  the first ``--baseline-samples`` samples of every network and extrapolated linearly to N_boot
  (a per-sample loop has no other size dependence); its outputs are checked against the batched
  ones;
- the whole stage as the script runs it: ``predict_all`` (load the 40 checkpoints, predict, write
  the 8 HDF5 files).

Both are timed with 1 torch thread and with the default count ($SLURM_CPUS_PER_TASK,
$OMP_NUM_THREADS or torch's).  Timings on a shared machine are noisy -- with other processes on
the cores, multi-threaded single-sample calls slow down by large factors, which inflates the
ratio; the 1-thread figures are the like-for-like ones.  The load average is printed with the
figures, and the batched time is the best of ``--repeats`` runs.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkpoints import load_replicas, save_checkpoint  # noqa: E402
from config import load_config  # noqa: E402
from devices import configure_threads  # noqa: E402
from io_utils import provenance  # noqa: E402
from prediction import find_checkpoints, mock_inputs, predict_all, predict_ensemble  # noqa: E402
from pytorch_models_t32 import build_model  # noqa: E402
from sigma_model_utils import standardise  # noqa: E402


def write_random_audience(cfg, mu, gamma) -> None:
    """Randomly initialised checkpoints for every (σ, ensemble, replica) of the preset."""
    generator = torch.Generator().manual_seed(0)
    for sigma in cfg["sigmas_gev"]:
        for ens, spec in cfg["ensembles"].items():
            for r in range(cfg["n_replicas"]):
                model = build_model(spec["arch"], cfg.n_t, cfg["n_energies"], cfg["weight_std"],
                                    cfg["leaky_slope"], generator)
                save_checkpoint(cfg.checkpoint(sigma, ens, r), model, mu=mu, gamma=gamma, t=cfg.t,
                                kernel=cfg["kernel"], T=cfg["T"], sigma_gev=sigma, sigma=cfg.sigma(sigma),
                                energies=cfg.energies, config=cfg.to_json(), provenance=provenance(cfg),
                                ensemble=ens, replica=r, epoch=0, best_val_loss=float("nan"))


def best_of(repeats, f):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - start)
    return min(times), out


@torch.no_grad()
def baseline(models, metas, samples, n):
    """One sample through one network at a time: [n, N_r, N_E]."""
    out = np.empty((n, len(models), metas[0]["energies"].size), dtype=np.float32)
    for r, model in enumerate(models):
        for b in range(n):
            x = standardise(samples[b:b + 1], metas[r]["mu"], metas[r]["gamma"])
            out[b, r] = model(torch.from_numpy(x))[0].numpy()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-boot", type=int, default=800)
    parser.add_argument("--baseline-samples", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="seconds: 20 samples, 2 of them one at a time, one repeat (the test suite)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_boot, args.baseline_samples, args.repeats = 20, 2, 1
    default_threads = configure_threads()
    thread_counts = sorted({1, default_threads})
    with tempfile.TemporaryDirectory() as root:
        cfg = load_config("reference", [f"n_boot={args.n_boot}"], root)
        inputs = mock_inputs(cfg, "delta_tanh")
        mu, gamma = inputs.clean, inputs.samples.std(axis=0)     # inputs of order one
        write_random_audience(cfg, mu, gamma)
        groups = []
        for sigma in cfg["sigmas_gev"]:
            for ens in cfg["ensembles"]:
                present, _ = find_checkpoints(cfg, sigma, ens)
                models, metas = load_replicas([p for _, p in present], cfg=cfg)
                groups.append((sigma, ens, present, models, metas))
        n_networks = sum(len(g[3]) for g in groups)
        n_sub = min(args.baseline_samples, args.n_boot)
        per_eval = 1e6 / (args.n_boot * n_networks)
        print(f"{args.n_boot} samples x {n_networks} networks ({len(groups)} ensemble-sigma groups), "
              f"torch {torch.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

        def batched():
            return [predict_ensemble(cfg, inputs, s, e, present, "cpu")[0] for s, e, present, _, _ in groups]

        for threads in thread_counts:
            torch.set_num_threads(threads)
            t_batched, predictions = best_of(args.repeats, batched)
            t_sub, reference = best_of(1, lambda: [baseline(g[3], g[4], inputs.samples, n_sub) for g in groups])
            diff = max(float(np.abs(ref - P[:n_sub]).max() / np.abs(P).max())
                       for ref, P in zip(reference, predictions))
            t_baseline = t_sub * args.n_boot / n_sub
            print(f"\n{threads} torch thread(s), load average {os.getloadavg()[0]:.1f}:")
            print(f"  batched (predict_ensemble, 8 passes): {t_batched:8.3f} s  "
                  f"({t_batched * per_eval:.1f} us per sample-network)")
            print(f"  baseline (one sample at a time):      {t_baseline:8.3f} s  ({t_baseline * per_eval:.1f} us per "
                  f"sample-network; timed on {n_sub} samples per network, extrapolated x{args.n_boot / n_sub:g})")
            print(f"  speed-up batched / baseline:          {t_baseline / t_batched:8.1f} x   (goal >= 50 x)")
            print(f"  max |batched - baseline| / max |prediction|: {diff:.1e} (float32 round-off)")
        torch.set_num_threads(default_threads)
        t_stage, _ = best_of(1, lambda: predict_all(cfg, inputs, "cpu"))
    print(f"\nwhole stage, predict_all with {default_threads} thread(s) (load 40 checkpoints, predict, "
          f"write 8 files): {t_stage:.3f} s")


if __name__ == "__main__":
    main()

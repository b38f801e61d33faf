"""Training throughput (samples/s) at batch 32 on this machine's CPU (issue 3).

For arcS and arcL (method §6), three ways of running the same training steps (Adam, L1 loss):
  baseline   one network fed by a torch Dataset with a per-item __getitem__ and a DataLoader
             (shuffle, batch 32), torch.optim.Adam with its defaults: a straightforward script
  preloaded  one network through the worker's path (replica_group.ReplicaGroup): batches are index
             slices of tensors already in memory, fused Adam
  batched    N_r replicas (default 5) as one stacked model through the same path, each replica
             on its own batch of 32; its per-replica rate = N_r · 32 · steps / time
Goal: batched per-replica rate >= 3x the baseline's single-network rate.

Each figure is also given as GFLOP/s (fwd + bwd ≈ 3 x 2 x the multiply-adds of the layers) next to
a plain matrix product of similar shape measured in the same run: the ceiling this core reaches.
At batch 32 on a CPU the step is compute-bound, so stacking replicas cannot raise the per-replica
rate above that ceiling; what it gains is the whole N_r-replica job, also printed.

    python benchmarks/bench_training.py [--seconds 8] [--replicas 5] [--archs arcS arcL]
    python benchmarks/bench_training.py --quick        # seconds: the test suite runs it

Threads follow $SLURM_CPUS_PER_TASK / $OMP_NUM_THREADS like the worker (else torch's default).
Data are random standardised inputs (N samples x 20 noisy copies x 32 slices) and targets of the
reference shapes; throughput does not depend on their values.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices import configure_threads  # noqa: E402
from pytorch_models_t32 import ARCHITECTURES, HIDDEN, build_model, conv_output_length  # noqa: E402
from replica_group import ReplicaGroup  # noqa: E402

N_T, N_E, N_NOISE, BATCH = 32, 47, 20, 32


class PerItemDataset(torch.utils.data.Dataset):
    """The baseline's input pipeline: one (input, target) pair per Python call."""

    def __init__(self, inputs, targets):
        self.inputs, self.targets = inputs, targets

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, i):
        return self.inputs[i], self.targets[i // N_NOISE]


def timed(step, seconds: float, sync=None, warmup: float = 1.0) -> tuple[int, float]:
    """Run ``step`` for ``warmup`` s, then for ``seconds``; return (steps, elapsed).  ``sync``
    (e.g. torch.cuda.synchronize) waits for queued device work before each clock reading."""
    sync = sync or (lambda: None)
    for duration in (warmup, seconds):
        sync()
        n, start = 0, time.perf_counter()
        while time.perf_counter() < start + duration:
            step()
            n += 1
        sync()
    return n, time.perf_counter() - start


def flops_per_sample(arch: str) -> float:
    """Training FLOPs per sample: 3 (forward, input and weight gradients) x 2 x multiply-adds."""
    c1, c2 = ARCHITECTURES[arch]
    l1 = conv_output_length(N_T)
    l2 = conv_output_length(l1)
    macs = l1 * c1 * 3 + l2 * c2 * c1 * 3 + c2 * l2 * HIDDEN + HIDDEN * N_E
    return 6.0 * macs


def matmul_ceiling(seconds: float) -> float:
    """GFLOP/s of a plain [160, 1024] x [1024, 256] product: what this core reaches on dense work."""
    a, b = torch.randn(160, 1024), torch.randn(1024, 256)
    n, dt = timed(lambda: a @ b, seconds)
    return n * 2 * 160 * 1024 * 256 / dt / 1e9


def baseline(arch, inputs, targets, seconds, device="cpu", sync=None, warmup=1.0):
    """Samples/s of the straightforward script: host tensors, per-item Dataset, DataLoader, each
    batch moved to ``device`` in the step."""
    model = build_model(arch, N_T, N_E).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    loss_fn = torch.nn.L1Loss()
    loader = torch.utils.data.DataLoader(PerItemDataset(inputs, targets), batch_size=BATCH, shuffle=True)
    batches = iter(loader)

    def step():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    n, dt = timed(step, seconds, sync, warmup)
    return n * BATCH / dt


def fresh_weights(arch: str, n_replicas: int) -> list[dict]:
    """The state_dicts of ``n_replicas`` new networks, as replica_group.ReplicaGroup takes them."""
    return [build_model(arch, N_T, N_E).state_dict() for _ in range(n_replicas)]


def replica_group(arch: str, weights: list[dict], device) -> ReplicaGroup:
    """The worker's group of len(weights) stacked replicas with a fresh Adam (lr 2e-4)."""
    return ReplicaGroup(list(range(len(weights))), weights, [None] * len(weights), arch, N_T, N_E, 0.2, 2e-4, device)


def batch_order(n_items: int, n_replicas: int, rng, device) -> torch.Tensor:
    """One epoch's order of item rows per replica [N_r, n_items], on ``device``."""
    return torch.as_tensor(np.stack([rng.permutation(n_items) for _ in range(n_replicas)]), device=device)


def group_batches(group: ReplicaGroup, inputs, targets, order):
    """The worker's step on consecutive slices of ``order``: returns step() (cycling the epoch)."""
    n_steps = order.shape[1] // BATCH
    k = 0

    def step():
        nonlocal k
        idx = order[:, (k % n_steps) * BATCH:(k % n_steps + 1) * BATCH]
        k += 1
        return group.step(inputs[idx], targets[idx // N_NOISE])
    return step


def worker_path(arch, inputs, targets, n_replicas, seconds, rng, sync=None, warmup=1.0):
    """Per-replica samples/s of ``n_replicas`` stacked networks, as the worker trains them, on
    the device of ``inputs``."""
    group = replica_group(arch, fresh_weights(arch, n_replicas), inputs.device)
    order = batch_order(len(inputs), n_replicas, rng, inputs.device)
    n, dt = timed(group_batches(group, inputs, targets, order), seconds, sync, warmup)
    return n * BATCH / dt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per figure (default 8)")
    parser.add_argument("--replicas", type=int, default=5, help="replicas trained batched (default 5)")
    parser.add_argument("--archs", nargs="+", default=["arcS", "arcL"])
    parser.add_argument("--samples", type=int, default=5000, help="clean samples in memory (x20 noisy copies)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: arcS, 2 replicas, 0.2 s per figure, 200 samples (the test suite)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.replicas, args.archs, args.samples = 0.2, 2, ["arcS"], 200
    threads = configure_threads()
    torch.set_flush_denormal(True)          # as the worker does, for every path
    rng = np.random.default_rng(0)
    inputs = torch.as_tensor(rng.standard_normal((args.samples * N_NOISE, N_T)), dtype=torch.float32)
    targets = torch.as_tensor(rng.standard_normal((args.samples, N_E)), dtype=torch.float32)
    print(f"torch {torch.__version__}, {threads} thread(s), batch {BATCH}, {args.seconds:g} s per figure "
          "(the machine may be shared: figures are as measured)")
    ceiling = matmul_ceiling(min(args.seconds, 3.0))
    print(f"dense matrix product, same threads: {ceiling:.1f} GFLOP/s (the ceiling)")
    r = args.replicas
    for arch in args.archs:
        base = baseline(arch, inputs, targets, args.seconds)
        single = worker_path(arch, inputs, targets, 1, args.seconds, rng)
        batched = worker_path(arch, inputs, targets, r, args.seconds, rng)
        gflops = flops_per_sample(arch) / 1e9
        print(f"{arch}: baseline (Dataset+DataLoader, 1 network) {base:9.0f} samples/s  {base * gflops:5.1f} GFLOP/s")
        print(f"{arch}: preloaded slices, 1 network            {single:9.0f} samples/s  {single * gflops:5.1f} GFLOP/s"
              f"   x{single / base:.2f} vs baseline")
        print(f"{arch}: {r} replicas batched, per replica       {batched:9.0f} samples/s  "
              f"{r * batched * gflops:5.1f} GFLOP/s   x{batched / base:.2f} vs baseline (goal x3)")
        print(f"{arch}: the {r}-replica job batched is x{r * batched / base:.2f} faster than {r} baseline runs "
              f"one after another on the same core(s) (x{r * batched / single:.2f} vs {r} preloaded runs)")

if __name__ == "__main__":
    main()

"""Training steps/s on the device this machine has, and the device-hours of the reference audience (issue 13).

On CUDA if torch sees a GPU, otherwise on the CPU (the output says which), at batch 32, for the
two architectures of the reference audience (arcS, arcL; method §6-7), four layouts of the same
training step (Adam, L1 loss):
  (a) baseline   one network fed by a per-item Dataset and a DataLoader from host memory, each
                 batch moved to the device in the step (bench_training.baseline)
  (b) preloaded  one network through the worker's path (training.ReplicaGroup) on tensors already
                 on the device: a batch is an index slice
  (c) stacked    the preset's N_r = 5 replicas as one stacked model (ReplicaGroup/StackedReplicas),
                 each replica on its own batch of 32
  (d) captured   the step of (c) captured once and replayed: on CUDA a CUDA graph of the whole step
                 (gather, forward, backward, fused Adam with capturable=True); on the CPU
                 torch.compile(ReplicaGroup.step) instead (skipped with --quick: tens of seconds
                 of compilation).  It is run next to (c) from the same start on the same batches
                 and reported only if its losses and weights agree with (c)'s within float32
                 round-off (the tolerances of tests/test_training.py's batched-vs-separate test).

Printed per layout: steps/s, samples/s per replica, the peak device memory (CUDA: allocated by
torch in that layout; CPU: the process's peak resident memory so far), and the projected
device-hours of the whole reference audience in that layout, with its ratio to (a).  The
projection counts training steps only (tasks.training_groups of the `reference` preset: 40 runs;
per epoch ceil(N_train · N_noise / 32) steps with N_train = the 80 % of N_ρ that split_samples
keeps for training) and assumes every run goes the full max_epochs = 200 (early stopping only
shortens it: an upper bound); the per-epoch validation pass (forward only, a quarter as many
items) is left out.  (a) and (b) train the 40 runs one after another; (c) and (d) train the 8
(ensemble, σ) groups of 5.

float32 throughout; TF32 off (the project's default) unless --tf32 (CUDA only; no effect on a CPU).

    python benchmarks/bench_gpu.py [--seconds 6] [--samples N] [--archs arcS arcL] [--tf32]
    python benchmarks/bench_gpu.py --quick        # seconds, on the CPU: the test suite runs it

Data are random standardised inputs (N samples × 20 noisy copies × 32 slices) and targets of the
reference shapes; N defaults to the reference N_ρ = 400k on CUDA (1 GB on the device, as in a
real run) and 5000 on the CPU.
"""
from __future__ import annotations

import argparse
import math
import platform
import resource
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_training import (  # noqa: E402
    BATCH,
    N_E,
    N_NOISE,
    N_T,
    baseline,
    batch_order,
    fresh_weights,
    group_batches,
    replica_group,
    timed,
    worker_path,
)

from config import load_config  # noqa: E402
from devices import configure_threads, float32_precision, select_device  # noqa: E402
from replica_streams import split_samples  # noqa: E402
from tasks import training_groups  # noqa: E402

LAYOUTS = {"a": "baseline: Dataset + DataLoader, 1 network",
           "b": "preloaded device tensors, 1 network",
           "c": "5 stacked replicas (ReplicaGroup)",
           "d": "the step of (c) captured"}
CHECK_STEPS = 10                   # steps of (d) compared with (c) before (d) is timed


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"CPU {model}, {torch.get_num_threads()} torch thread(s)"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9      # Linux: KiB


def cuda_graph_step(arch, weights, inputs, targets, order):
    """ReplicaGroup.step (gather, forward, backward, fused Adam) captured once as a CUDA graph.

    Returns (group, step); step() copies the next slice of ``order`` into the graph's index
    tensor and replays the graph.  The warm-up steps that capture needs are undone: the group
    starts from ``weights`` with a fresh Adam, like (c)."""
    group = replica_group(arch, weights, inputs.device)
    lr = group.optimizer.param_groups[0]["lr"]
    group.optimizer = torch.optim.Adam(list(group.stack.params.values()), lr=lr, fused=True, capturable=True)
    initial = {name: p.detach().clone() for name, p in group.stack.params.items()}
    idx = order[:, :BATCH].clone()

    def body():
        return group.step(inputs[idx], targets[idx // N_NOISE])
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):                 # creates Adam's state and the libraries' workspaces
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = body()
    with torch.no_grad():
        for name, p in group.stack.params.items():
            p.copy_(initial[name])
        for state in group.optimizer.state.values():
            for value in state.values():
                value.zero_()              # step 0, zero moments: a fresh Adam
    n_steps, k = order.shape[1] // BATCH, 0

    def step():
        nonlocal k
        idx.copy_(order[:, (k % n_steps) * BATCH:(k % n_steps + 1) * BATCH])
        k += 1
        graph.replay()
        return loss
    return group, step


def compiled_step(arch, weights, inputs, targets, order):
    """(group, step) with ReplicaGroup.step compiled by torch.compile (the CPU's stand-in for (d))."""
    group = replica_group(arch, weights, inputs.device)
    group.step = torch.compile(group.step)
    return group, group_batches(group, inputs, targets, order)


def agreement(reference, candidate, ref_losses, losses) -> tuple[bool, str]:
    """Do two groups that ran the same steps hold the same numbers, within float32 round-off?"""
    loss_rel = ((losses - ref_losses).abs() / ref_losses.abs()).max().item()
    close = all(torch.allclose(candidate.stack.params[n], reference.stack.params[n], rtol=1e-4, atol=1e-5)
                for n in reference.names)
    weight_abs = max((candidate.stack.params[n] - reference.stack.params[n]).abs().max().item()
                     for n in reference.names)
    detail = (f"after {CHECK_STEPS} steps: max relative loss difference {loss_rel:.1e}, "
              f"max weight difference {weight_abs:.1e}")
    return loss_rel <= 1e-5 and close, detail


def captured(arch, inputs, targets, n_replicas, seconds, rng, sync, warmup):
    """(per-replica samples/s or None, what was done) of layout (d)."""
    device = inputs.device
    weights = fresh_weights(arch, n_replicas)
    order = batch_order(len(inputs), n_replicas, rng, device)
    how = "CUDA graph of the whole step" if device.type == "cuda" else "torch.compile(ReplicaGroup.step)"
    try:
        reference = replica_group(arch, weights, device)
        reference_step = group_batches(reference, inputs, targets, order)
        ref_losses = torch.stack([reference_step() for _ in range(CHECK_STEPS)])
        make = cuda_graph_step if device.type == "cuda" else compiled_step
        group, step = make(arch, weights, inputs, targets, order)
        losses = torch.stack([step().clone() for _ in range(CHECK_STEPS)])
    except Exception as err:             # a benchmark reports what failed and goes on
        return None, f"{how} failed: {type(err).__name__}: {err}"
    same, detail = agreement(reference, group, ref_losses, losses)
    if not same:
        return None, f"{how} does NOT reproduce (c) ({detail}): not timed"
    n, dt = timed(step, seconds, sync, warmup)
    return n * BATCH / dt, f"{how}, same numbers as (c) ({detail})"


def audience_steps(cfg) -> dict[str, dict[str, int]]:
    """Training steps per epoch of the preset's audience by architecture: 'separate' sums over
    its runs (one network per process), 'stacked' over its (ensemble, σ) groups."""
    out: dict[str, dict[str, int]] = {}
    for ensemble, sigma, ids in training_groups(cfg):
        if ensemble not in cfg["ensembles"]:          # the interval networks are not the audience
            continue
        spec = cfg["ensembles"][ensemble]
        n_train = len(split_samples(cfg, ensemble, sigma, 0, spec["nrho"])[0])
        steps = math.ceil(n_train * cfg["n_noise"] / cfg["batch_size"])
        per = out.setdefault(spec["arch"], {"separate": 0, "stacked": 0})
        per["separate"] += steps * len(ids)
        per["stacked"] += steps
    return out


def audience_hours(cfg, steps_per_s: dict[str, float], kind: str) -> float:
    """Device-hours of all runs at max_epochs, from the steps/s of each architecture."""
    steps = audience_steps(cfg)
    return sum(cfg["max_epochs"] * steps[arch][kind] / steps_per_s[arch] for arch in steps) / 3600


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured time per figure (default 6)")
    parser.add_argument("--samples", type=int,
                        help="clean samples (x20 noisy copies); default 400000 on CUDA, 5000 on CPU")
    parser.add_argument("--archs", nargs="+", default=["arcS", "arcL"], choices=["arcS", "arcM", "arcL"])
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--tf32", action="store_true",
                        help="TF32 in CUDA's float32 matmul/conv (default off, as the preset)")
    parser.add_argument("--quick", action="store_true",
                        help="a check that it runs: 0.2 s per figure, 500 samples, (d) skipped on the CPU")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    threads = configure_threads()
    device = select_device(args.device, args.tf32)
    torch.set_flush_denormal(True)          # as the worker does
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    seconds, warmup = (0.2, 0.1) if args.quick else (args.seconds, 1.0)
    n_samples = 500 if args.quick else args.samples or (400_000 if device.type == "cuda" else 5000)
    cfg = load_config("reference")
    n_r = cfg["n_replicas"]

    gen = torch.Generator().manual_seed(0)
    host_inputs = torch.randn(n_samples * N_NOISE, N_T, generator=gen)
    host_targets = torch.randn(n_samples, N_E, generator=gen)
    inputs, targets = host_inputs.to(device), host_targets.to(device)
    rng = np.random.default_rng(0)
    print(f"device: {device_name(device)}" + ("" if device.type == "cuda" else " -- no CUDA device found, "
                                               "these are CPU figures"))
    print(f"torch {torch.__version__}, {threads} CPU thread(s), {float32_precision()}, batch {BATCH}, "
          f"{n_samples} samples x {N_NOISE} noisy copies, {seconds:g} s per figure "
          "(the machine may be shared: figures are as measured)")

    rates: dict[str, dict[str, float | None]] = {layout: {} for layout in LAYOUTS}
    print(f"\n{'arch':5} {'layout':44} {'steps/s':>9} {'samples/s per replica':>22} {'vs (a)':>7} {'peak memory':>12}")
    for arch in args.archs:
        runs = {"a": lambda: (baseline(arch, host_inputs, host_targets, seconds, device, sync, warmup), ""),
                "b": lambda: (worker_path(arch, inputs, targets, 1, seconds, rng, sync, warmup), ""),
                "c": lambda: (worker_path(arch, inputs, targets, n_r, seconds, rng, sync, warmup), "")}
        if args.quick and device.type != "cuda":
            runs["d"] = lambda: (None, "skipped with --quick on the CPU (torch.compile takes tens of seconds)")
        else:
            runs["d"] = lambda: captured(arch, inputs, targets, n_r, seconds, rng, sync, warmup)
        for layout, run in runs.items():
            reset_peak(device)
            per_replica, note = run()
            if per_replica is None:
                rates[layout][arch] = None
                print(f"{arch:5} ({layout}) {LAYOUTS[layout]:40} {'-':>9} {'-':>22} {'-':>7} {'-':>12}  {note}")
                continue
            rates[layout][arch] = per_replica / BATCH
            ratio = per_replica / BATCH / rates["a"][arch]
            print(f"{arch:5} ({layout}) {LAYOUTS[layout]:40} {per_replica / BATCH:9.1f} {per_replica:22.0f} "
                  f"{f'x{ratio:.2f}':>7} {peak_memory_gb(device):9.2f} GB  {note}")

    if device.type != "cuda":
        print("(CPU: peak memory is the process's peak resident set so far, not per layout)")
    if set(args.archs) < set(audience_steps(cfg)):
        print(f"\nno projection: the reference audience needs {sorted(audience_steps(cfg))}, measured {args.archs}")
        return
    runs_total = sum(len(ids) for ens, _, ids in training_groups(cfg) if ens in cfg["ensembles"])
    print(f"\nthe reference audience ({runs_total} runs, {cfg['max_epochs']} epochs each, training steps only) "
          f"on this device, one process at a time:")
    hours = {}
    for layout, name in LAYOUTS.items():
        if any(rates[layout].get(arch) is None for arch in audience_steps(cfg)):
            print(f"  ({layout}) {name:40}  not measured")
            continue
        hours[layout] = audience_hours(cfg, rates[layout], "separate" if layout in "ab" else "stacked")
        ratio = f"x{hours['a'] / hours[layout]:.2f} vs (a)" if "a" in hours else ""
        print(f"  ({layout}) {name:40} {hours[layout]:9.1f} device-hours  "
              f"({hours[layout] / cfg['max_epochs'] * 60:.1f} device-minutes per epoch)  {ratio}")


if __name__ == "__main__":
    main()

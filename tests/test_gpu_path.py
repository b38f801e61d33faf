"""The GPU path (issue 13): benchmarks/bench_gpu.py --quick and its projection, a training loop
that never makes the host wait for the device inside an epoch, and CUDA float32 results equal to
the CPU's within round-off (skipped where there is no CUDA)."""
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import data_root, make_cfg, quiet  # noqa: F401  (the tiny training files)
from torch.overrides import TorchFunctionMode

import replica_streams
import training
from replica_group import ReplicaGroup

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_gpu  # noqa: E402
from bench_training import BATCH, batch_order, fresh_weights, group_batches, replica_group  # noqa: E402

from config import load_config  # noqa: E402
from devices import float32_precision, select_device  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_bench_gpu_quick_runs_on_the_cpu(capsys):
    bench_gpu.main(["--quick", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "no CUDA device found, these are CPU figures" in out
    rows = {(line.split()[0], line.split()[1]): line for line in out.splitlines()
            if line[:4] in ("arcS", "arcL")}
    for arch in ("arcS", "arcL"):
        for layout in "abc":
            figures = re.search(r"\s([\d.]+)\s+(\d+)\s+x[\d.]+\s+[\d.]+ GB", rows[(arch, f"({layout})")])
            steps, per_replica = float(figures[1]), float(figures[2])
            assert steps > 0 and per_replica == pytest.approx(BATCH * steps, abs=BATCH * 0.05 + 0.5)
        assert "skipped with --quick on the CPU" in rows[(arch, "(d)")]
    projected = [line for line in out.splitlines() if "device-hours" in line]
    assert len(projected) == 3 and "x1.00 vs (a)" in projected[0]


def test_audience_steps_of_the_reference_preset():
    """method §7 by hand: a 400k set keeps 320k samples for training (80 %), x 20 noisy copies
    = 6.4M items = 200,000 steps of 32 per epoch; the 25k set (Nref_rho) 20k x 20 / 32 = 12,500.
    arcL: Nmax, Nref_b, Nref_rho; arcS: Nref_n; each at 2 σ, 5 replicas per (ensemble, σ)."""
    cfg = load_config("reference")
    steps = bench_gpu.audience_steps(cfg)
    arcl_group_steps = 2 * (200_000 + 200_000 + 12_500)
    assert steps == {"arcL": {"stacked": arcl_group_steps, "separate": 5 * arcl_group_steps},
                     "arcS": {"stacked": 2 * 200_000, "separate": 5 * 2 * 200_000}}
    hours = bench_gpu.audience_hours(cfg, {"arcL": 100.0, "arcS": 400.0}, "stacked")
    assert hours == pytest.approx(200 * (arcl_group_steps / 100 + 400_000 / 400) / 3600)


def _two_runs(device, n_steps=bench_gpu.CHECK_STEPS):
    weights = fresh_weights("arcS", 2)
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randn(200 * 20, 32, generator=gen).to(device)
    targets = torch.randn(200, 47, generator=gen).to(device)
    order = batch_order(len(inputs), 2, np.random.default_rng(1), device)
    groups, losses = [], []
    for _ in range(2):
        group = replica_group("arcS", weights, device)
        step = group_batches(group, inputs, targets, order)
        losses.append(torch.stack([step() for _ in range(n_steps)]))
        groups.append(group)
    return groups, losses


def test_agreement_check_of_the_captured_step_can_fail():
    """The check that admits layout (d): identical runs agree, a weight moved by 1e-3 does not."""
    (a, b), (loss_a, loss_b) = _two_runs("cpu")
    assert bench_gpu.agreement(a, b, loss_a, loss_b)[0]
    with torch.no_grad():
        b.stack.params["fc1.weight"][1, 0, 0] += 1e-3
    assert not bench_gpu.agreement(a, b, loss_a, loss_b)[0]
    assert not bench_gpu.agreement(a, a, loss_a, loss_a * (1 + 1e-4))[0]


@needs_cuda
def test_cuda_graph_of_the_step_reproduces_the_eager_step():
    gen = torch.Generator().manual_seed(2)
    inputs = torch.randn(500 * 20, 32, generator=gen).cuda()
    targets = torch.randn(500, 47, generator=gen).cuda()
    rate, note = bench_gpu.captured("arcS", inputs, targets, 5, 0.2, np.random.default_rng(2),
                                    torch.cuda.synchronize, 0.1)
    assert rate is not None and "same numbers" in note, note


# --- no host-device synchronisation in the step loop -----------------------------------------------
READS = {"item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__", "__array__",
         "nonzero", "masked_select", "unique"}
COPIES = {"to", "cuda", "as_tensor", "tensor"}


class SyncCounter(TorchFunctionMode):
    """Counts the torch calls that make the host wait for a CUDA device: reading values (.item(),
    float(), .tolist(), .numpy(), .cpu(), np.asarray), data-dependent shapes (nonzero, boolean
    masks) and blocking copies (a .to()/.cuda()/torch.as_tensor() naming a device without
    non_blocking=True: from pageable host memory the copy waits for the stream).  On the CPU
    nothing waits, but the calls are the same code path as on CUDA."""

    def __init__(self):
        super().__init__()
        self.calls = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        names_device = "device" in kwargs or any(isinstance(a, (str, torch.device)) for a in args[1:])
        if (name in READS or (name in COPIES and names_device and not kwargs.get("non_blocking"))
                or (name == "__getitem__" and isinstance(args[1], torch.Tensor) and args[1].dtype == torch.bool)):
            self.calls[name] += 1
        return func(*args, **kwargs)


def test_sync_counter_sees_what_synchronises():
    t = torch.ones(3)
    with SyncCounter() as counter:
        t.sum().item(), float(t[0]), t.tolist(), np.asarray(t), t[t > 0], t.to("cpu")
        t.to("cpu", non_blocking=True), t + 1, t.double()
    assert counter.calls == Counter(item=1, __float__=1, tolist=1, __array__=1, __getitem__=1, to=1)


def _syncs_per_epoch(make_cfg, tmp_path, noise, nrho):
    """Calls counted by SyncCounter in a whole one-epoch training of 2 replicas of Nref_n."""
    root = tmp_path / f"nrho{nrho}"
    root.mkdir()
    (root / "training_datasets_T32").symlink_to(tmp_path / "training_datasets_T32")
    cfg = make_cfg("max_epochs=1", f"ensembles.Nref_n.nrho={nrho}", root=root)
    with SyncCounter() as counter:
        training.train_replicas(cfg, "Nref_n", 0.44, [0, 1], noise, device="cpu", log=quiet)
    return counter.calls


@pytest.mark.parametrize("noise", ["stored", "replica", "fresh", "an injected .item() per step"])
def test_no_host_device_sync_grows_with_the_steps(make_cfg, tmp_path, monkeypatch, noise):
    """Epochs of 10 and 20 steps (N_rho = 200, 400: 80 % x 2 noisy copies / batch 32) make the
    same synchronising calls: none is per step.  Fresh noise in blocks of 4 steps, so that a
    per-block one would show; a per-step .item() must be caught (the test of the test)."""
    monkeypatch.setattr(replica_streams, "FRESH_BLOCK_STEPS", 4)
    if noise.startswith("an injected"):
        step = ReplicaGroup.step

        def step_reading_its_loss(self, x, y):
            loss = step(self, x, y)
            loss.sum().item()
            return loss
        monkeypatch.setattr(ReplicaGroup, "step", step_reading_its_loss)
        few, many = (_syncs_per_epoch(make_cfg, tmp_path, "stored", nrho) for nrho in (200, 400))
        assert many["item"] == few["item"] + 10
        return
    few, many = (_syncs_per_epoch(make_cfg, tmp_path, noise, nrho) for nrho in (200, 400))
    assert few == many


# --- CUDA float32 = CPU float32 within round-off ---------------------------------------------------
def _one_step(device, dtype=torch.float32, tf32_like=False):
    """Loss, gradients and weights after one training step (ReplicaGroup.step: forward, L1 loss,
    backward, fused Adam) of 2 stacked arcS replicas, and their outputs on new inputs (the pass
    prediction makes), as float64 on the CPU.  Targets lie above every output, so that no
    gradient cancels to exactly zero (Adam would turn its round-off into a step of ±lr)."""
    torch.manual_seed(3)
    weights = fresh_weights("arcS", 2)
    x, y, x_new = torch.randn(2, 32, 32), torch.rand(2, 32, 47) + 1, torch.randn(64, 32)
    group = replica_group("arcS", weights, device)
    if dtype != torch.float32 or tf32_like:
        cast = _tf32_rounded if tf32_like else (lambda t: t.to(dtype))
        group.stack.params = {n: cast(p.detach()).requires_grad_() for n, p in group.stack.params.items()}
        group.optimizer = torch.optim.Adam(list(group.stack.params.values()), lr=2e-4, fused=True)
        x, y, x_new = (cast(t) for t in (x, y, x_new))
    loss = group.step(x.to(device), y.to(device))
    with torch.no_grad():
        outputs = group.stack.forward_shared(x_new.to(device))
    as64 = {n: p.detach().cpu().double() for n, p in group.stack.params.items()}
    grads = {n: p.grad.cpu().double() for n, p in group.stack.params.items()}
    return loss.cpu().double(), grads, as64, outputs.cpu().double()


def _tf32_rounded(t):
    """float32 with the mantissa cut to TF32's 10 bits (what TF32 does to a matmul's operands)."""
    return (t.float().contiguous().view(torch.int32) & ~((1 << 13) - 1)).view(torch.float32)


def _agree(a, b) -> bool:
    """Equal within float32 round-off: loss rtol 1e-5, gradients 1e-5 of their largest element,
    weights 1e-6 (the step is lr = 2e-4), outputs 1e-6 (they are ~0.03).  Measured float32 vs
    float64 on the CPU: 3e-8, 7e-7, 1e-7 and 1e-8."""
    loss, grads, weights, outputs = a
    return (torch.allclose(loss, b[0], rtol=1e-5, atol=0)
            and all((grads[n] - b[1][n]).abs().max() <= 1e-5 * b[1][n].abs().max() for n in grads)
            and all(torch.allclose(weights[n], b[2][n], rtol=0, atol=1e-6) for n in weights)
            and torch.allclose(outputs, b[3], rtol=0, atol=1e-6))


def test_round_off_tolerance_admits_float32_and_rejects_tf32_rounding():
    """The yardstick of the CUDA test, here: float32 vs float64 passes, TF32-rounded inputs fail."""
    reference = _one_step("cpu", torch.float64)
    assert _agree(_one_step("cpu"), reference)
    assert not _agree(_one_step("cpu", tf32_like=True), reference)


@needs_cuda
def test_cuda_float32_equals_the_cpu_within_round_off():
    select_device("cuda", tf32=False)
    assert _agree(_one_step("cuda"), _one_step("cpu"))


# --- TF32: an explicit option, off by default ------------------------------------------------------
@pytest.fixture
def restore_precision():
    yield
    select_device(tf32=False)


def test_tf32_is_off_unless_the_preset_asks_and_a_no_op_on_the_cpu(make_cfg, tmp_path, restore_precision):
    """Every preset has tf32 off; the training sets the precision from the preset where it
    chooses the device; on the CPU TF32 changes no number (same history, same weights)."""
    from config import PRESETS
    assert all(preset["tf32"] is False for preset in PRESETS.values())
    histories = {}
    for tf32 in (True, False):
        root = tmp_path / f"tf32_{tf32}"
        root.mkdir()
        (root / "training_datasets_T32").symlink_to(tmp_path / "training_datasets_T32")
        cfg = make_cfg("max_epochs=2", "ensembles.Nref_n.nrho=200", f"tf32={str(tf32).lower()}", root=root)
        training.train_replicas(cfg, "Nref_n", 0.44, [0], device="cpu", log=quiet)
        assert float32_precision() == ("TF32 on (CUDA matmul/conv)" if tf32 else "IEEE float32 (TF32 off)")
        histories[tf32] = cfg.history_path(0.44, "Nref_n", 0).read_text()
    assert histories[True] == histories[False]

"""The method §6 networks, the batched replica evaluation and self-contained checkpoints."""
import numpy as np
import pytest
import torch

from checkpoints import load_checkpoint, load_replicas, save_checkpoint
from io_utils import InputError
from pytorch_models_t32 import StackedReplicas, build_model, parameter_count, predict_replicas
from sigma_model_utils import standardise

CHANNELS = {"arcS": (16, 32), "arcM": (32, 64), "arcL": (64, 128)}


def hand_count(c1, c2, n_t, n_out):
    """Parameters from the layer sizes of method §6, counted by hand.

    conv(k=3, s=2, p=1) maps length n to floor((n - 1)/2) + 1: 32 -> 16 -> 8, 20 -> 10 -> 5.
    """
    l2 = {32: 8, 20: 5}[n_t]
    conv1 = c1 * 1 * 3 + c1
    conv2 = c2 * c1 * 3 + c2
    fc1 = c2 * l2 * 256 + 256
    fc2 = 256 * n_out + n_out
    return conv1 + conv2 + fc1 + fc2


@pytest.mark.parametrize("arch", list(CHANNELS))
@pytest.mark.parametrize("n_t,n_out", [(32, 47), (20, 7)])
def test_shape_and_parameter_count(arch, n_t, n_out):
    model = build_model(arch, n_t, n_out)
    assert parameter_count(model) == hand_count(*CHANNELS[arch], n_t, n_out)
    assert model(torch.zeros(5, n_t)).shape == (5, n_out)


def test_reference_counts():
    # arcS at n_t = 32, 47 outputs: 64 + 1568 + 65792 + 12079
    assert parameter_count(build_model("arcS", 32, 47)) == 79_503


def test_initialisation_statistics():
    model = build_model("arcL", 32, 47, weight_std=0.05, generator=torch.Generator().manual_seed(1))
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.all(p == 0)
    w = model.fc1.weight.detach()             # 262144 draws: std within 1% of 0.05
    assert abs(w.std().item() - 0.05) < 5e-4 and abs(w.mean().item()) < 5e-4
    again = build_model("arcL", 32, 47, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.conv2.weight, model.conv2.weight)


def test_prediction_chunks_are_sized_by_the_memory_budget(monkeypatch):
    import pytorch_models_t32
    models = [build_model("arcS", 32, 47, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    per_sample = 4 * 2 * StackedReplicas(models).activation_floats()
    monkeypatch.setattr(pytorch_models_t32, "PREDICT_CHUNK_BYTES", 5 * per_sample)      # chunks of 5
    calls = []
    forward = StackedReplicas.forward_shared
    monkeypatch.setattr(StackedReplicas, "forward_shared", lambda self, x: calls.append(len(x)) or forward(self, x))
    x = torch.randn(12, 32)
    P = predict_replicas(models, x)
    assert calls == [5, 5, 2] and P.shape == (12, 2, 47)
    torch.testing.assert_close(P, torch.stack([m(x) for m in models], dim=1), rtol=1e-5, atol=1e-6)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="arcXL"):
        build_model("arcXL", 32, 47)


def test_stacked_replicas_match_separate_models():
    models = [build_model("arcM", 32, 47, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    x = torch.randn(9, 32)
    shared = predict_replicas(models, x, chunk=4)                 # chunks of 4, 4, 1
    separate = torch.stack([m(x) for m in models], dim=1)
    torch.testing.assert_close(shared, separate, rtol=1e-5, atol=1e-6)
    stack = StackedReplicas(models)
    xs = torch.randn(3, 6, 32)
    each = stack.forward_each(xs)
    for r, m in enumerate(models):
        torch.testing.assert_close(each[r], m(xs[r]), rtol=1e-5, atol=1e-6)
    for r, m in enumerate(stack.unstack()):
        assert torch.equal(m.fc2.weight, models[r].fc2.weight)


def test_stacked_gradients_match_separate_models():
    """The batched forward (unfold + batched matmuls, own backward) against torch's conv1d/linear."""
    models = [build_model("arcS", 20, 7, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    stack = StackedReplicas(models)
    x, y = torch.randn(3, 5, 20), torch.randn(3, 5, 7)
    (stack.forward_each(x) - y).abs().mean(dim=(1, 2)).sum().backward()
    for r, m in enumerate(models):
        (m(x[r]) - y[r]).abs().mean().backward()
        for name, p in m.named_parameters():
            torch.testing.assert_close(stack.params[name].grad[r], p.grad, rtol=1e-5, atol=1e-7)


def _meta(cfg, replica):
    rng = np.random.default_rng(0)
    return dict(mu=rng.normal(size=cfg.n_t), gamma=1 + rng.random(cfg.n_t), t=cfg.t,
                kernel=cfg["kernel"], T=cfg["T"], sigma_gev=0.44, sigma=cfg.sigma(0.44),
                energies=cfg.energies, config=cfg.to_json(), provenance={"seed": 1, "what": "test"},
                ensemble="Nmax", replica=replica, epoch=3, best_val_loss=0.25)


def test_checkpoint_round_trip_without_training_file(tiny_cfg, tmp_path):
    cfg = tiny_cfg
    paths = []
    models = []
    for r in range(2):
        model = build_model("arcS", cfg.n_t, len(cfg.energies), generator=torch.Generator().manual_seed(r))
        paths.append(save_checkpoint(tmp_path / "ckpt" / f"replica_{r}_best.pth", model, **_meta(cfg, r)))
        models.append(model)
    assert not list(tmp_path.rglob("*.hdf5"))                     # nothing but the checkpoints
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))
    loaded, metas = load_replicas(paths, cfg=cfg)
    meta = metas[0]
    assert meta["arch"] == "arcS" and meta["epoch"] == 3 and meta["best_val_loss"] == 0.25
    np.testing.assert_array_equal(meta["t"], cfg.t)
    np.testing.assert_array_equal(meta["mu"], _meta(cfg, 0)["mu"])
    C = np.random.default_rng(1).normal(size=(4, cfg.n_t))
    x = standardise(C, meta["mu"], meta["gamma"])
    P = predict_replicas(loaded, x)
    assert P.shape == (4, 2, len(cfg.energies))
    expect = torch.stack([m(torch.as_tensor(x)) for m in models], dim=1)
    torch.testing.assert_close(P, expect, rtol=1e-5, atol=1e-6)


def test_checkpoint_mismatches_are_clear(tiny_cfg, tmp_path):
    cfg = tiny_cfg
    path = save_checkpoint(tmp_path / "c.pth", build_model("arcS", cfg.n_t, 47), **_meta(cfg, 0))
    with pytest.raises(InputError, match="another architecture"):
        load_checkpoint(path, arch="arcL")
    from config import load_config
    other = load_config("tiny", ["t_max=24"], tmp_path)
    with pytest.raises(InputError, match="another time geometry"):
        load_checkpoint(path, cfg=other)
    with pytest.raises(InputError, match="key 'a_inv_gev': the network was trained with a_inv_gev=1.0, this "
                                         "run has 2.0"):                          # issue 22 item 8
        load_checkpoint(path, cfg=load_config("tiny", ["a_inv_gev=2.0"], tmp_path))
    with pytest.raises(InputError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pth")

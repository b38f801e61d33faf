"""Self-contained checkpoints of trained networks (SPEC §5, §6, §10).

A checkpoint ``replica_{r}_best.pth`` holds everything prediction needs, so the training file is
never read again: the weights, the architecture name and geometry, the standardisation μ(t), γ(t),
the input time slices t, kernel and T, the smearing width σ, the energy grid, the resolved preset
(JSON) and the provenance record of the run.  It is a plain ``torch.save`` dictionary of tensors,
numbers and strings, readable with ``torch.load(weights_only=True)`` (no pickled code).

    model, meta = load_checkpoint(path)                 # meta["mu"], meta["gamma"], ... (numpy)
    models, metas = load_replicas(paths, cfg=cfg)       # one ensemble, checked consistent
    P = predict_replicas(models, standardise(C, metas[0]["mu"], metas[0]["gamma"]))  # [N, N_r, N_E]
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from io_utils import InputError, atomic_output
from pytorch_models_t32 import ARCHITECTURES, SpectralNet

FORMAT = "spectral-net-checkpoint/1"
ARRAY_KEYS = ("mu", "gamma", "t", "energies")           # stored as float64 tensors, read as numpy
REQUIRED = ("arch", "n_t", "n_out", "leaky_slope", "mu", "gamma", "t", "kernel", "T", "sigma_gev",
            "sigma", "energies", "config", "provenance", "ensemble", "replica", "epoch",
            "best_val_loss")


def save_checkpoint(path, model: SpectralNet, **meta) -> Path:
    """Write ``model`` and ``meta`` (the REQUIRED keys, plus any extra numbers/strings) atomically."""
    missing = [k for k in REQUIRED if k not in meta and k not in ("arch", "n_t", "n_out", "leaky_slope")]
    if missing:
        raise ValueError(f"save_checkpoint: missing metadata {missing}")
    record = {"format": FORMAT, "arch": model.arch, "n_t": model.n_t, "n_out": model.n_out,
              "leaky_slope": float(model.act.negative_slope)}
    for key, value in meta.items():
        if key in ARRAY_KEYS:
            value = torch.as_tensor(np.asarray(value, dtype=np.float64))
        elif key == "provenance":
            value = {k: v if isinstance(v, (int, float)) else str(v) for k, v in value.items()}
        elif isinstance(value, np.generic):
            value = value.item()
        record[key] = value
    record["state_dict"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_output(path) as tmp:
        torch.save(record, tmp)
    return path


def _read(path: Path, map_location) -> dict:
    if not path.is_file():
        raise InputError(path, None, "no such file (expected a trained-network checkpoint replica_{r}_best.pth)")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for foreign or damaged files
        raise InputError(path, None, f"not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(path, "format", f"expected a checkpoint of format {FORMAT!r}")
    missing = [k for k in REQUIRED + ("state_dict",) if k not in record]
    if missing:
        raise InputError(path, missing[0], f"missing; a checkpoint needs {list(REQUIRED)}")
    return record


def load_checkpoint(path, map_location="cpu", cfg=None, arch: str | None = None):
    """The network (eval mode) and its metadata; arrays in ``meta`` are numpy float64.

    With ``cfg`` the checkpoint must match its geometry (time slices, kernel, T, energies); with
    ``arch`` its architecture.  Any mismatch is one clear InputError.
    """
    path = Path(path)
    record = _read(path, map_location)
    meta = {k: v for k, v in record.items() if k != "state_dict"}
    for key in ARRAY_KEYS:
        meta[key] = record[key].cpu().numpy().astype(np.float64)
    if meta["arch"] not in ARCHITECTURES:
        raise InputError(path, "arch", f"{meta['arch']!r}; expected one of {list(ARCHITECTURES)}")
    if arch is not None and meta["arch"] != arch:
        raise InputError(path, "arch", f"network {meta['arch']}, expected {arch} "
                         "(a checkpoint of another architecture)")
    if cfg is not None:
        check_geometry(meta, cfg, path)
    model = SpectralNet(meta["arch"], meta["n_t"], meta["n_out"], meta["leaky_slope"])
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in record["state_dict"].items()}
    if expected != found:
        raise InputError(path, "state_dict", f"weights of shapes {found} do not form a {meta['arch']} "
                         f"network with n_t={meta['n_t']}, {meta['n_out']} outputs (expected {expected})")
    model.load_state_dict(record["state_dict"])
    return model.to(map_location).eval(), meta


def check_geometry(meta: dict, cfg, path) -> None:
    """The checkpoint was trained for the preset's inputs and outputs, or an InputError says how not."""
    if meta["t"].shape != cfg.t.shape or not np.array_equal(meta["t"], cfg.t):
        raise InputError(path, "t", f"trained on time slices {meta['t'].astype(int).tolist()}, but the "
                         f"preset uses t={cfg['t_min']}..{cfg['t_max']} (another time geometry)")
    if meta["kernel"] != cfg["kernel"] or int(meta["T"]) != int(cfg["T"]):
        raise InputError(path, "kernel", f"trained for kernel {meta['kernel']!r} with T={meta['T']}, "
                         f"but the preset has kernel {cfg['kernel']!r} with T={cfg['T']}")
    energies = cfg.energies
    if meta["energies"].shape != energies.shape or not np.allclose(meta["energies"], energies, rtol=1e-12):
        raise InputError(path, "energies", f"{len(meta['energies'])} energies "
                         f"[{meta['energies'][0]:.6g}..{meta['energies'][-1]:.6g}], but the preset's grid has "
                         f"{len(energies)} [{energies[0]:.6g}..{energies[-1]:.6g}]")


def load_replicas(paths, map_location="cpu", cfg=None):
    """The replicas of one ensemble and σ: (models, metas), checked to be interchangeable inputs-
    and outputs-wise (same architecture, t, kernel, T, σ, energies, μ and γ)."""
    paths = [Path(p) for p in paths]
    loaded = [load_checkpoint(p, map_location, cfg) for p in paths]
    first = loaded[0][1]
    for path, (_, meta) in zip(paths[1:], loaded[1:]):
        for key in ("arch", "kernel", "T", "sigma_gev", "ensemble"):
            if meta[key] != first[key]:
                raise InputError(path, key, f"{meta[key]!r}, but {paths[0].name} has {first[key]!r}; "
                                 "expected replicas of one ensemble")
        for key in ARRAY_KEYS:
            if meta[key].shape != first[key].shape or not np.array_equal(meta[key], first[key]):
                raise InputError(path, key, f"differs from {paths[0].name}; replicas of one ensemble "
                                 "share the training file's standardisation and grids")
    return [m for m, _ in loaded], [meta for _, meta in loaded]


def config_of(meta: dict) -> dict:
    """The resolved preset values the checkpoint was trained with."""
    return json.loads(meta["config"])["values"]

"""The two .pth formats of training (method §5, §6, §10): self-contained checkpoints of trained
networks, and the resumable training state of a replica (with its history CSV).

A checkpoint ``replica_{r}_best.pth`` holds everything prediction needs, so the training file is
never read again: the weights, the architecture name and geometry, the standardisation μ(t), γ(t),
the input time slices t, kernel and T, the smearing width σ, the energy grid, the resolved preset
(JSON) and the provenance record of the run.  It is a plain ``torch.save`` dictionary of tensors,
numbers and strings, readable with ``torch.load(weights_only=True)`` (no pickled code).

    model, meta = load_checkpoint(path)                 # meta["mu"], meta["gamma"], ... (numpy)
    models, metas = load_replicas(paths, cfg=cfg)       # one ensemble, checked consistent
    P = predict_replicas(models, standardise(C, metas[0]["mu"], metas[0]["gamma"]))  # [N, N_r, N_E]

The resumable state ``replica_{r}_state.pth`` (cfg.state_path) is a ``torch.save`` dictionary of
format STATE_FORMAT: the fields of ``ReplicaState`` (weights, Adam moments and step, epoch and step
counters, running train loss, early-stopping counters, history, and the best network's checkpoint
record, so that a lost replica_{r}_best.pth is written again byte for byte) and the ``identity``
of the run that started it, which a run must match to continue it.  The states of a group of
replicas trained together are saved as one unit, all or none (``save_states``).  The history
(epoch, train_loss, val_loss, lr) is also written as CSV beside the checkpoint (cfg.history_path).
"""
from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from io_utils import DamagedFile, InputError, OutputError, atomic_output, save_torch
from pytorch_models_t32 import ARCHITECTURES, SpectralNet
from tasks import training_runs_table

FORMAT = "spectral-net-checkpoint/1"
ARRAY_KEYS = ("mu", "gamma", "t", "energies")           # stored as float64 tensors, read as numpy
REQUIRED = ("arch", "n_t", "n_out", "leaky_slope", "mu", "gamma", "t", "kernel", "T", "sigma_gev",
            "sigma", "energies", "config", "provenance", "ensemble", "replica", "epoch",
            "best_val_loss")


def checkpoint_record(model: SpectralNet, **meta) -> dict:
    """What ``save_checkpoint`` writes: ``model`` and ``meta`` (the REQUIRED keys, plus any extra
    numbers/strings) as one dictionary of tensors, numbers and strings."""
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
    return record


def save_checkpoint(path, model: SpectralNet, **meta) -> Path:
    """Write ``model`` and ``meta`` (``checkpoint_record``) atomically."""
    return write_checkpoint_record(path, checkpoint_record(model, **meta))


def write_checkpoint_record(path, record: dict) -> Path:
    """Write a ``checkpoint_record`` (as kept in a training state) atomically."""
    return save_torch(record, path)


def _read(path: Path, map_location) -> dict:
    if not path.is_file():
        raise InputError(path, None, "no such file (expected a trained-network checkpoint "
                         "replica_{r}_best.pth)")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for foreign or damaged files
        raise DamagedFile(path, None, f"not a readable checkpoint ({type(err).__name__}: {err})") from None
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


def checkpoint_problem(path, record: dict | None = None) -> str | None:
    """Why the checkpoint at ``path`` cannot be used ('missing', 'unreadable (...)'), or, given
    the ``record`` it should hold (a ReplicaState's ``best``), how it differs from it; else None."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        load_checkpoint(path)
    except InputError as err:
        return f"unreadable ({err.problem})"
    if record is not None:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        same = saved["state_dict"].keys() == record["state_dict"].keys() and all(
            torch.equal(saved["state_dict"][k], record["state_dict"][k]) for k in record["state_dict"])
        if saved["epoch"] != record["epoch"] or not same:
            return f"the network of epoch {saved['epoch']}, not the best one of epoch {record['epoch']}"
    return None


GEOMETRY_KEYS = ("t_min", "t_max", "kernel", "T", "a_inv_gev", "energy_min_gev", "energy_max_gev", "n_energies")


def check_geometry(meta: dict, cfg, path) -> None:
    """The checkpoint was trained for the preset's inputs and outputs, or an InputError says how
    not: first the setting that differs (GEOMETRY_KEYS, with both values), then the arrays."""
    made = json.loads(meta["config"]).get("values", {})
    for key in GEOMETRY_KEYS:
        if key in made and made[key] != cfg[key]:
            raise InputError(path, key, f"the network was trained with {key}={made[key]!r}, this run has "
                             f"{cfg[key]!r} (another time geometry or energy grid); use the setting it was "
                             "trained with")
    if meta["t"].shape != cfg.t.shape or not np.array_equal(meta["t"], cfg.t):
        raise InputError(path, "t", f"trained on time slices {meta['t'].astype(int).tolist()}, but the "
                         f"preset uses t={cfg['t_min']}..{cfg['t_max']} (another time geometry)")
    if meta["kernel"] != cfg["kernel"] or int(meta["T"]) != int(cfg["T"]):
        raise InputError(path, "kernel", f"trained for kernel {meta['kernel']!r} with T={meta['T']}, "
                         f"but the preset has kernel {cfg['kernel']!r} with T={cfg['T']}")
    energies = cfg.energies
    if meta["energies"].shape != energies.shape or not np.allclose(meta["energies"], energies, rtol=1e-12):
        raise InputError(path, "energies", f"{len(meta['energies'])} energies "
                         f"[{meta['energies'][0]:.6g}..{meta['energies'][-1]:.6g}], but the preset's "
                         f"grid has {len(energies)} [{energies[0]:.6g}..{energies[-1]:.6g}]")


def load_replicas(paths, map_location="cpu", cfg=None):
    """The replicas of one ensemble and σ: (models, metas), checked to be interchangeable inputs-
    and outputs-wise (same architecture, t, kernel, T, σ, energies, μ and γ) and trained with the
    same noise mode (their spread σ_rep means something else with shared and with own noise)."""
    paths = [Path(p) for p in paths]
    loaded = [load_checkpoint(p, map_location, cfg) for p in paths]
    first = loaded[0][1]
    for path, (_, meta) in zip(paths[1:], loaded[1:]):
        for key in ("arch", "kernel", "T", "sigma_gev", "ensemble", "noise"):
            if meta.get(key) != first.get(key):
                raise InputError(path, key, f"{meta[key]!r}, but {paths[0].name} has {first[key]!r}; "
                                 "expected replicas of one ensemble")
        for key in ARRAY_KEYS:
            if meta[key].shape != first[key].shape or not np.array_equal(meta[key], first[key]):
                raise InputError(path, key, f"differs from {paths[0].name}; replicas of one ensemble "
                                 "share the training file's standardisation and grids")
    return [m for m, _ in loaded], [meta for _, meta in loaded]


# --- the resumable training state of one replica ---------------------------------------------------
STATE_FORMAT = "spectral-train-state/2"
# the format before the best network was kept in the state: read as a state without it (best None),
# so that replicas trained by an earlier version are neither retrained nor refused
EARLIER_STATE_FORMATS = ("spectral-train-state/1",)
# the preset values that shape the training data or the training (not, e.g., the prediction's n_boot)
TRAINING_KEYS = ("kernel", "T", "t_min", "t_max", "a_inv_gev", "energy_min_gev", "energy_max_gev",
                 "n_energies", "E0_min", "E0_max", "epsilon", "noise_file", "n_noise", "seed",
                 "rng_block", "leaky_slope", "weight_std", "lr", "batch_size", "lr_decay_start",
                 "lr_decay_rate", "max_epochs", "patience", "min_delta", "val_fraction", "tf32")


def identity(cfg, arch, ensemble, sigma_gev, replica, noise_mode) -> dict:
    """What a saved state must have been started with to be continued: the run, its noise mode
    and the preset values of TRAINING_KEYS."""
    values = {k: cfg[k] for k in TRAINING_KEYS}
    values["ensemble"] = training_runs_table(cfg)[ensemble]
    if values["ensemble"].get("space") == "prior":      # Nref_prior (method §8): its space too
        values["prior_space"] = cfg["prior_space"]
    return {"arch": arch, "ensemble": ensemble, "sigma_gev": float(sigma_gev),
            "replica": int(replica), "noise": noise_mode,
            "values": json.dumps(values, sort_keys=True)}


@dataclass
class ReplicaState:
    """Where one replica's training stands; saved whole, so a resumed run continues bitwise."""
    identity: dict
    model: dict                      # state_dict on the CPU
    adam: dict | None = None         # {"step", "exp_avg": {name: tensor}, "exp_avg_sq": {...}}
    epoch: int = 0                   # epochs completed
    step: int = 0                    # steps of the current epoch completed
    loss_sum: float = 0.0            # Σ batch loss × batch size over those steps
    history: list = field(default_factory=list)     # [epoch, train_loss, val_loss, lr] rows
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    finished: bool = False
    stop_reason: str = ""
    best: dict | None = None         # the best network's checkpoint_record: replica_{r}_best.pth's content


def save_states(states: dict[Path, ReplicaState]) -> None:
    """Save the states of a replica group as one unit, all or none, so that its replicas are never
    saved at different epochs (a kill or a full disk at any moment):

    1. each state is written beside its file as ``.{name}.{pid}.pending``;
    2. the commit record ``.{first name}.commit`` (JSON: pending name -> state name) is written:
       from here on the new states are the saved ones;
    3. each pending file is renamed onto its state file, then the commit record is removed.

    A failure before 2 removes what was written and raises an OutputError (the old states stay);
    after a kill, ``finish_saving_states`` (under the replicas' locks) removes uncommitted pending
    files and completes step 3 of a committed record.  All the files are in one directory."""
    paths = sorted(states)
    pending = {path: path.with_name(f".{path.name}.{os.getpid()}.pending") for path in paths}
    commit = _commit_record(paths[0])
    writing = paths[0]
    try:
        writing.parent.mkdir(parents=True, exist_ok=True)
        for writing in paths:
            buffer = io.BytesIO()
            torch.save({"format": STATE_FORMAT, **{f.name: getattr(states[writing], f.name)
                                                    for f in fields(ReplicaState)}}, buffer)
            pending[writing].write_bytes(buffer.getbuffer())
        writing = commit
        commit.write_text(json.dumps({pending[p].name: p.name for p in paths}))
    except OSError as err:
        for path in [*pending.values(), commit]:
            with contextlib.suppress(OSError):
                path.unlink()
        raise OutputError(writing, err) from err
    _complete(commit, paths)


def _commit_record(path: Path) -> Path:
    return path.with_name(f".{path.name}.commit")


def _complete(commit: Path, paths) -> list[Path]:
    """Step 3 of ``save_states`` for the state files ``paths`` among those of ``commit``; the
    record is removed once none of its pending files is left.  Returns the state files renamed."""
    names = {p.name for p in paths}
    record = json.loads(commit.read_text())
    done = []
    for pending, name in record.items():
        if name in names and (commit.parent / pending).exists():
            os.replace(commit.parent / pending, commit.parent / name)
            done.append(commit.parent / name)
    if not any((commit.parent / pending).exists() for pending in record):
        commit.unlink()
    return done


def finish_saving_states(paths) -> tuple[list[Path], list[Path]]:
    """Complete or undo the group saves (``save_states``) that a killed run left for the state files
    ``paths``; call it holding their replicas' locks (no live writer of them then).  A committed
    record is completed, pending files without one are removed.  Returns (states completed,
    pending files removed)."""
    paths = [Path(p) for p in paths]
    completed = []
    for directory in sorted({p.parent for p in paths if p.parent.is_dir()}):
        for commit in sorted(directory.glob(".*.commit")):
            try:
                json.loads(commit.read_text())
            except ValueError:                    # cut short by a kill: never committed
                if commit in map(_commit_record, paths):
                    commit.unlink()
                continue
            completed += _complete(commit, paths)
    removed = [stale for p in paths for stale in sorted(p.parent.glob(f".{glob.escape(p.name)}.*.pending"))]
    for stale in removed:
        stale.unlink()
    return completed, removed


def load_state(path: Path, ident: dict) -> ReplicaState:
    """The state saved at ``path``, or an InputError if it was started by another run."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(path, None, f"not a readable training state ({type(err).__name__}: {err}); "
                         "delete it to start this replica afresh") from None
    if not isinstance(record, dict) or record.get("format") not in (STATE_FORMAT, *EARLIER_STATE_FORMATS):
        raise InputError(path, "format", f"expected a training state of format {STATE_FORMAT!r}; delete it "
                         "to start this replica afresh")
    saved = record["identity"]
    for key in ("arch", "ensemble", "sigma_gev", "replica", "noise"):
        if saved[key] != ident[key]:
            raise InputError(path, key, f"saved by a run with {key}={saved[key]!r}, this run has "
                             f"{ident[key]!r} (another architecture or setting); delete it to start afresh")
    if saved["values"] != ident["values"]:
        old, new = json.loads(saved["values"]), json.loads(ident["values"])
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differ)
        raise InputError(path, "identity", f"saved with other preset values ({detail}); run with the "
                         "same settings to continue, or delete it to start afresh")
    return ReplicaState(**{f.name: record.get(f.name) if f.name == "best" else record[f.name]
                           for f in fields(ReplicaState)})


def history_csv(history) -> str:
    """The history rows (epoch, train_loss, val_loss, lr) as CSV text."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", "train_loss", "val_loss", "lr"])
    writer.writerows(history)
    return text.getvalue()


def write_history(path: Path, history) -> None:
    """The history as CSV (``history_csv``), written atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(history_csv(history))


def history_differs(path: Path, history) -> bool:
    """Whether the history CSV at ``path`` is missing or is not ``history``."""
    return not path.is_file() or path.read_text() != history_csv(history)

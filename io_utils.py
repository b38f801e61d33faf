"""Files: atomic writes, provenance records and clear errors for bad input.

Nothing half-written is ever left behind: every output is written to a temporary name beside its
final one and renamed into place only when complete (``atomic_output``).  Every output records how
it was made (``provenance``): the resolved configuration, the seed, the code version and the
versions of the packages that computed it.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

REPO_DIR = Path(__file__).resolve().parent


class InputError(ValueError):
    """Bad input: the message names the file, the key and what was expected."""

    def __init__(self, path, key, problem):
        self.path, self.key, self.problem = str(path), key, problem
        where = f"{self.path}" + (f", key '{key}'" if key else "")
        super().__init__(f"{where}: {problem}")


@contextlib.contextmanager
def atomic_output(path: str | Path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    On any exception (or a kill, which leaves only a ``*.tmp`` name that readers never open) the
    final name is untouched and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (Slurm's cancel or time limit) into SystemExit, so ``finally`` blocks run and
    temporary files are removed instead of left half-written."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete ``.*.tmp`` files a killed job left in ``directory``; return what was removed."""
    directory = Path(directory)
    stale = sorted(directory.glob(".*.tmp")) if directory.is_dir() else []
    for path in stale:
        path.unlink()
    return stale


def code_version() -> str:
    """``git describe`` of this repository (``-dirty`` when modified), or 'unknown'."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"],
                             cwd=REPO_DIR, capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def package_versions() -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "h5py": h5py.__version__}
    for name in ("scipy", "torch", "pandas"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "unknown")
    return versions


def provenance(cfg, **extra) -> dict:
    """What every output file records (as HDF5 attributes or a checkpoint entry)."""
    record = {
        "config": cfg.to_json(),
        "preset": cfg.preset,
        "overrides": json.dumps(cfg.overrides),
        "seed": int(cfg["seed"]),
        "code_version": code_version(),
        "package_versions": json.dumps(package_versions(), sort_keys=True),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
    }
    record.update(extra)
    return record


def write_attrs(h5obj, record: dict) -> None:
    for key, value in record.items():
        h5obj.attrs[key] = value if isinstance(value, (int, float, np.number, np.ndarray)) else str(value)


def open_h5(path: str | Path, what: str) -> h5py.File:
    """Open an HDF5 file for reading, or stop with a message saying which file and what it is."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, f"no such file (expected the {what})")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(path, None, f"not a readable HDF5 file ({err}); expected the {what}") from None


def read_dataset(h5: h5py.File, key: str, shape=None, dtype=np.float64) -> np.ndarray:
    """Read ``key`` from an open file, checking it exists, its shape, and that it is finite.

    ``shape`` may contain None for free axes.
    """
    filename = h5.file.filename          # h5 may be a group of the file
    if key not in h5:
        raise InputError(filename, key, f"missing; the file has {sorted(h5.keys())}")
    if not isinstance(h5[key], h5py.Dataset):
        raise InputError(filename, key, f"an HDF5 group (with {sorted(h5[key].keys())}); expected a dataset")
    raw = h5[key][()]
    if np.iscomplexobj(raw):
        raise InputError(filename, key, "complex values; expected real numbers")
    try:
        data = np.asarray(raw, dtype=dtype)
    except (TypeError, ValueError):
        raise InputError(filename, key, f"not numeric ({h5[key].dtype}); expected real numbers") from None
    if shape is not None and (data.ndim != len(shape)
                              or any(s is not None and s != d for s, d in zip(shape, data.shape))):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise InputError(filename, key, f"shape {list(data.shape)}, expected {want}")
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        raise InputError(filename, key, "contains NaN or inf; expected finite values")
    return data

"""Files: atomic writes, provenance records and clear errors for bad input.

Nothing half-written is ever left behind: every output is written to a temporary name beside its
final one and renamed into place only when complete (``atomic_output``).  Every output records how
it was made (``provenance``): the resolved configuration, the seed, the software version
(``version``, from version.py), the code version (``code_version``, git describe) and the versions
of the packages that computed it.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import glob
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from version import __version__

REPO_DIR = Path(__file__).resolve().parent


class UserError(ValueError):
    """A problem of the user's files or settings, not a bug: scripts report it in one line and
    exit with status 2 (cli.main_guard).  InputError (a file) and config.ConfigError (a setting)."""


class InputError(UserError):
    """Bad input: the message names the file, the key and what was expected."""

    def __init__(self, path, key, problem):
        self.path, self.key, self.problem = str(path), key, problem
        where = f"{self.path}" + (f", key '{key}'" if key else "")
        super().__init__(f"{where}: {problem}")


class DamagedFile(InputError):
    """A dataset whose bytes cannot be read back (a failed checksum, a truncated file)."""


class OutputError(OSError):
    """An output that cannot be written (full disk, read-only or unwritable directory): the
    message names the path and says that nothing half-written was left."""

    def __init__(self, path, err: OSError | None = None, problem: str | None = None):
        self.path = str(path)
        code = getattr(err, "errno", None) or _errno_in_text(err)
        super().__init__(code, problem or _reason(code, err))

    def __str__(self):
        return f"{self.path}: {self.strerror}"


_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted"}


def _errno_in_text(err) -> int | None:
    """The errno HDF5 reports only in its message text ('errno = 28'), if any."""
    text = str(err)
    for code in _REASONS:
        if f"errno = {code}," in text or os.strerror(code) in text:
            return code
    return None


def _reason(code, err) -> str:
    what = _REASONS.get(code)
    detail = " ".join(str(err).split()) if err is not None else ""
    return (f"cannot write: {what}" if what else f"cannot write ({detail})") + \
        "; nothing was written (no half-written file left)"


@contextlib.contextmanager
def atomic_output(path: str | Path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    On any exception (or a kill, which leaves only a ``*.tmp`` name that readers never open) the
    final name is untouched and the temporary file is removed.  An OSError while writing (a full
    disk, a read-only file system; HDF5's RuntimeError that carries such an errno) becomes one
    OutputError naming ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(path, err) from err
    except RuntimeError as err:      # HDF5 reports a failed flush on close as a RuntimeError
        if _errno_in_text(err) is None:
            raise
        raise OutputError(path, err) from err
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def save_torch(obj, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically.  Serialised in memory first: torch's own writer turns
    a full disk into an unspecific RuntimeError, Python's write into an OutputError naming ``path``."""
    import torch  # only the stages that save networks need it
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


@contextlib.contextmanager
def h5_output(path: str | Path):
    """Yield an HDF5 file built in memory; when the block ends, every HDF5 handle is closed and its
    bytes are written to ``path`` atomically (``atomic_output``).  A full disk is then Python's one
    OSError (an OutputError naming ``path``), never HDF5 failing while it flushes or frees handles
    (tracebacks from its destructors, a crash at exit).  For files that fit in memory."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        yield h5
    with atomic_output(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def check_writable(directory: str | Path, what: str = "outputs") -> Path:
    """Prove, before any computing, that ``directory`` can hold files: a file written (and removed) in
    it or, where it does not exist yet, in its nearest existing parent, where it would be made.  No
    folder is created: the first output creates it (atomic_output), so a run stopped by its inputs
    (a mistyped --root) leaves none behind."""
    directory = Path(directory)
    try:
        fd, probe = tempfile.mkstemp(dir=nearest_existing(directory), prefix=".write-test-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        code = getattr(err, "errno", None)
        raise OutputError(directory, err, f"the directory for the {what} is not writable "
                          f"({_REASONS.get(code, err.strerror or err)}); choose another --root or fix "
                          "its permissions") from None
    return directory


def nearest_existing(directory: str | Path) -> Path:
    """``directory``, or where it does not exist yet, its nearest existing parent (where it would be made)."""
    directory = Path(directory)
    return next(p for p in (directory, *directory.absolute().parents) if p.is_dir() or p == p.parent)


def check_free_space(directory: str | Path, needed_bytes: int, what: str) -> None:
    """Stop before computing if ``directory``'s file system (that of its nearest existing parent,
    where it does not exist yet) has less room than ``needed_bytes`` (plus 5 %) for ``what``."""
    free = shutil.disk_usage(nearest_existing(directory)).free
    if free < 1.05 * needed_bytes:
        raise OutputError(directory, None, f"{free / 1e9:.3g} GB free, but the {what} need about "
                          f"{needed_bytes / 1e9:.3g} GB; free some space or choose another --root")


class TaskLocked(OSError):
    """Another process holds the lock of this task, or has this HDF5 file open for writing (the
    message names it; the errno, EWOULDBLOCK or EAGAIN, is not part of it)."""

    def __str__(self):
        return self.strerror


@contextlib.contextmanager
def task_lock(path: str | Path, what: str, wait: bool = False, log=print):
    """Hold an exclusive lock on ``path`` (created if needed) for the block: one running task per
    output.  Held by another process, it raises TaskLocked naming the holder (host, PID, Slurm job)
    at once, or, with ``wait``, says so and blocks until the holder ends.  The kernel releases it
    when the holder exits, however it dies, so a killed task never leaves a stale lock (flock:
    local file systems and NFS)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = " ".join(fh.read().split()) or "unknown (no holder recorded yet)"
            if not wait:
                raise TaskLocked(errno.EWOULDBLOCK, f"{path}: {what} is being run by another process "
                                 f"({holder}); wait for it to end, or pass --wait-lock to queue "
                                 "behind it") from None
            log(f"waiting for {what}, run by another process ({holder})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(holder_description() + "\n")
        fh.flush()
        yield path
    finally:
        fh.close()          # closing releases the lock


def holder_description() -> str:
    """Who runs this process: host, PID, Slurm job and array task, start time."""
    parts = [f"host {socket.gethostname()}", f"PID {os.getpid()}"]
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        parts.append(f"Slurm job {job}" + (f" (array {array}_{task})" if array and task else ""))
    parts.append("since " + datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return ", ".join(parts)


def raise_if_locked(path: str | Path, err: OSError) -> None:
    """Raise TaskLocked if HDF5 could not open ``path`` because another process has it open for
    writing (HDF5's file lock, errno EAGAIN 'unable to lock file'): the file is then not damaged
    and must not be made again.  Names the processes that have it open, where /proc shows them."""
    if not (isinstance(err, BlockingIOError) or "unable to lock file" in str(err)):
        return
    holders = processes_holding(path)
    raise TaskLocked(errno.EAGAIN, f"{path}: open for writing by another process "
                     f"({'; '.join(holders) or 'not visible from here'}): HDF5 lets no one else open it "
                     "meanwhile; wait for that process to end, then run this again") from None


def processes_holding(path: str | Path) -> list[str]:
    """'PID p: command' of the other processes that have ``path`` open (Linux /proc; those of other
    users are not visible)."""
    target, found = os.path.realpath(path), []
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        pid = int(fd_dir.split("/")[2])
        try:
            if pid != os.getpid() and any(os.readlink(f"{fd_dir}/{fd}") == target for fd in os.listdir(fd_dir)):
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"PID {pid}: {command.strip()[:80]}")
        except OSError:           # ended meanwhile, or another user's
            continue
    return found


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (Slurm's cancel or time limit) into SystemExit, so ``finally`` blocks run and
    temporary files are removed instead of left half-written."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def remove_stale_temporaries(outputs) -> list[Path]:
    """Delete the temporaries (``atomic_output``'s ``.{name}.{pid}.tmp``) that killed writers left
    beside these output files; return what was removed.  Call it only while holding the lock of
    the task that writes ``outputs``: no live writer of them can exist then."""
    stale = []
    for output in map(Path, outputs):
        if output.parent.is_dir():
            stale += sorted(output.parent.glob(f".{glob.escape(output.name)}.*.tmp"))
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stale


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(record) -> str:
    """A short digest of a JSON-able record of what made an output (inputs' digests, settings)."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def recorded_fingerprint(path: str | Path) -> str | None:
    """The ``fingerprint`` attribute of an existing HDF5 output, or None (absent or unreadable)."""
    try:
        with h5py.File(path, "r") as h5:
            value = h5.attrs.get("fingerprint")
    except OSError as err:
        raise_if_locked(path, err)
        return None
    return value.decode() if isinstance(value, bytes) else value


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
        "version": __version__,
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
        raise_if_locked(path, err)
        raise InputError(path, None, f"not a readable HDF5 file ({err}); expected the {what}") from None


def checksummed_dataset(h5, name: str, shape=None, dtype="f8", chunks=None, data=None) -> h5py.Dataset:
    """A dataset every chunk of which carries a Fletcher-32 checksum: a damaged byte is an error when
    it is read (read_dataset: DamagedFile), not a wrong number."""
    return h5.create_dataset(name, shape, dtype, data=data, chunks=chunks, fletcher32=True)


def read_dataset(h5: h5py.File, key: str, shape=None, dtype=np.float64) -> np.ndarray:
    """Read ``key`` from an open file, checking it exists, its shape, and that it is finite.

    ``shape`` may contain None for free axes.
    """
    filename = h5.file.filename          # h5 may be a group of the file
    if key not in h5:
        raise InputError(filename, key, f"missing; the file has {sorted(h5.keys())}")
    if not isinstance(h5[key], h5py.Dataset):
        raise InputError(filename, key, f"an HDF5 group (with {sorted(h5[key].keys())}); expected a dataset")
    try:
        raw = h5[key][()]
    except OSError as err:
        raise DamagedFile(filename, key, "damaged: its bytes cannot be read back ("
                          + " ".join(str(err).split()) + "; a failed checksum means corrupted data)") from None
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


# the rules of read_values: (what the values must be, the test of each value)
POSITIVE = ("positive finite values", lambda x: x > 0)
SHARE = ("shares in [0, 1]", lambda x: (x >= 0) & (x <= 1))


def read_values(h5: h5py.File, key: str, shape, rule) -> np.ndarray:
    """read_dataset (present, of ``shape``, finite), and every value obeys ``rule`` (POSITIVE,
    SHARE or another (expected, test) pair): the first value that does not is named with its index."""
    data = read_dataset(h5, key, shape)
    expected, test = rule
    bad = np.argwhere(~test(data))
    if len(bad):
        at = tuple(bad[0])
        raise InputError(h5.file.filename, key, f"{data[at]:.6g} at index {list(map(int, at))} ({len(bad)} "
                         f"such value{'s' if len(bad) > 1 else ''}); expected {expected}")
    return data


def read_correlation(h5: h5py.File, key: str, n: int, tol: float = 1e-10) -> np.ndarray:
    """read_dataset of an n×n correlation matrix, checked as one (to rounding ``tol``): symmetric, unit
    diagonal, entries in [-1, 1], no negative eigenvalue."""
    r = read_dataset(h5, key, (n, n))
    problems = [(np.abs(r - r.T).max() > tol, "not symmetric"),
                (np.abs(np.diag(r) - 1).max() > tol, "a diagonal entry is not 1"),
                (np.abs(r).max() > 1 + tol, f"an entry of magnitude {np.abs(r).max():.6g} > 1"),
                (np.linalg.eigvalsh((r + r.T) / 2).min() < -tol * n, "not positive semi-definite")]
    found = [what for bad, what in problems if bad]
    if found:
        raise InputError(h5.file.filename, key, f"{', '.join(found)}; expected a correlation matrix "
                         "(symmetric, unit diagonal, |R| <= 1, positive semi-definite)")
    return r

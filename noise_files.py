"""Noise input files (SPEC §4, §10): from per-configuration correlator samples to a noise file.

A noise file holds a lattice correlator's mean C_latt(t) and the covariance OF THE MEAN
Σ_latt(t, t') over time slices t (datasets ``mean`` [n_t], ``cov`` [n_t, n_t], ``t`` [n_t]),
with attributes ``source`` and ``n_samples`` (the number of independent samples -- bins -- the
mean was taken over) and the provenance of every output.  This module owns the format: it writes
it (``write_noise_file``) and reads and validates it (``load_noise_file``, giving a ``NoiseModel``
on the preset's input slices, picked by ``select_slices``, the one selector of time slices that
prediction uses for user files too).

User sample files: one row per gauge configuration, one column per time slice, the columns
being t = 0, 1, ..., n-1 (the full correlator as measured, starting at the source, t = 0):

    text   (.txt, .dat, .csv)  whitespace- or comma-separated numbers; '#' starts a comment
    NumPy  (.npy)              a 2-D array [N_cfg, n]
    HDF5   (.h5, .hdf5)        a 2-D dataset [N_cfg, n] named by ``tag`` (default 'samples')
    gvar   (.gvar)             the gvar/corrfitter dataset text format: lines 'TAG v0 v1 ...',
                               one line per configuration; ``tag`` picks the correlator

From the samples [N_cfg, n]: optional fold of a periodic correlator (C(t) + C(T−t))/2 with
T = n (symmetric mesons; a baryon's backward state is its parity partner, so do not fold it);
the time slices t_first..t_last selected; consecutive configurations averaged in bins of b
(N_cfg -> N_cfg // b bins, the last N_cfg % b configurations dropped); then mean = average over
bins, cov = sample covariance of the bins / N_bins.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from io_utils import InputError, atomic_output, open_h5, provenance, read_dataset, write_attrs

FORMATS = {".txt": "text", ".dat": "text", ".csv": "text", ".npy": "npy", ".h5": "hdf5",
           ".hdf5": "hdf5", ".gvar": "gvar"}


# --- reading per-configuration samples -----------------------------------------------------------
def detect_format(path: str | Path) -> str:
    """The sample-file format from the extension (see FORMATS)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(path, None, f"unknown extension {suffix!r}; expected one of "
                         f"{sorted(FORMATS)} or an explicit format ({sorted(set(FORMATS.values()))})")
    return FORMATS[suffix]


def _as_samples(data, path, key) -> np.ndarray:
    """Check that ``data`` is a finite 2-D float array [N_cfg, n]."""
    try:
        data = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(path, key, "not numeric; expected samples [N_cfg, n_t] of real numbers") from None
    if data.ndim != 2:
        raise InputError(path, key, f"shape {list(data.shape)}; expected 2-D samples "
                         "[N_cfg, n_t] (rows = configurations, columns = t = 0, 1, ...)")
    bad = np.argwhere(~np.isfinite(data))
    if len(bad):
        raise InputError(path, key, f"NaN or inf at configuration {bad[0][0]}, t = {bad[0][1]}; "
                         "expected finite values")
    return data


def read_samples(path: str | Path, fmt: str | None = None, tag: str | None = None) -> np.ndarray:
    """Per-configuration correlator samples [N_cfg, n] (columns t = 0..n-1) from a user file."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "hdf5":
        key = tag or "samples"
        with open_h5(path, "per-configuration correlator samples") as h5:
            if key not in h5 or not isinstance(h5[key], h5py.Dataset):
                found = []
                h5.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
                raise InputError(path, key, f"no such dataset; expected samples [N_cfg, n_t]; "
                                 f"the file has datasets {found}")
            return _as_samples(h5[key][()], path, key)
    if not path.is_file():
        raise InputError(path, None, "no such file (expected per-configuration correlator samples)")
    if fmt == "npy":
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise InputError(path, None, f"not a NumPy .npy array ({err}); "
                             "expected samples [N_cfg, n_t]") from None
        return _as_samples(data, path, None)
    if fmt == "text":
        return _read_text(path)
    if fmt == "gvar":
        return _read_gvar(path, tag)
    raise InputError(path, None, f"unknown format {fmt!r}; expected one of {sorted(set(FORMATS.values()))}")


def _numbers(fields, path, line_no) -> list[float]:
    try:
        return [float(f) for f in fields]
    except ValueError:
        raise InputError(path, f"line {line_no}", f"{' '.join(fields)[:60]!r} is not a row of "
                         "numbers; expected one configuration per line") from None


def _rectangular(rows, lines, path, what):
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        first = len(rows[0])
        bad = next(i for i, r in enumerate(rows) if len(r) != first)
        raise InputError(path, f"line {lines[bad]}", f"{len(rows[bad])} values; expected {first} "
                         f"like the first {what} (one value per time slice)")
    return rows


def _read_text(path: Path) -> np.ndarray:
    rows, lines = [], []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split("#", 1)[0].replace(",", " ").split()
        if fields:
            rows.append(_numbers(fields, path, line_no))
            lines.append(line_no)
    if not rows:
        raise InputError(path, None, "no data rows; expected one configuration per line")
    return _as_samples(_rectangular(rows, lines, path, "row"), path, None)


def _read_gvar(path: Path, tag: str | None) -> np.ndarray:
    """The gvar.dataset text format: 'TAG v0 v1 ...' per line, one line per configuration."""
    by_tag: dict[str, tuple[list, list]] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if fields:
            rows, lines = by_tag.setdefault(fields[0], ([], []))
            rows.append(_numbers(fields[1:], path, line_no))
            lines.append(line_no)
    if not by_tag:
        raise InputError(path, None, "no data lines; expected lines 'TAG v0 v1 ...'")
    if tag is None:
        if len(by_tag) > 1:
            raise InputError(path, "tag", f"the file holds several correlators {sorted(by_tag)}; "
                             "choose one with --tag")
        tag = next(iter(by_tag))
    if tag not in by_tag:
        raise InputError(path, tag, f"no lines with this tag; the file has tags {sorted(by_tag)}")
    rows, lines = by_tag[tag]
    return _as_samples(_rectangular(rows, lines, path, f"'{tag}' line"), path, tag)


# --- from samples to the mean and the covariance of the mean -------------------------------------
def fold_periodic(samples: np.ndarray) -> np.ndarray:
    """(C(t) + C(T−t))/2 for t = 0..T/2 of samples over t = 0..T−1 (T = number of columns)."""
    T = samples.shape[1]
    t = np.arange(T // 2 + 1)
    return 0.5 * (samples[:, t] + samples[:, (T - t) % T])


def bin_samples(samples: np.ndarray, bin_size: int) -> np.ndarray:
    """Averages of consecutive configurations in bins of ``bin_size``: [N_cfg // b, n].

    The last N_cfg % b configurations are dropped (an incomplete bin would carry another weight).
    """
    n_bins = samples.shape[0] // bin_size
    return samples[:n_bins * bin_size].reshape(n_bins, bin_size, samples.shape[1]).mean(axis=1)


def mean_and_cov_of_mean(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over samples [N, n] and the covariance of that mean: Σ = S / N, S the sample covariance.

    The covariance is summed element by element (einsum, no BLAS), so it is exactly symmetric and
    does not depend on the BLAS library or its thread count.
    """
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    dev = samples - mean
    cov = np.einsum("it,is->ts", dev, dev) / ((n - 1) * n)
    return mean, cov


def noise_from_samples(samples: np.ndarray, t_first: int, t_last: int, bin_size: int = 1,
                       fold: bool = False, path="samples", key=None):
    """(t, mean, cov of the mean, n_bins) from samples [N_cfg, n] over t = 0..n-1 (module doc)."""
    if fold:
        samples = fold_periodic(samples)
    n = samples.shape[1]
    if not 0 <= t_first <= t_last < n:
        raise InputError(path, key, f"time slices {t_first}..{t_last} requested; the "
                         f"{'folded ' if fold else ''}samples have t = 0..{n - 1}")
    picked = samples[:, t_first:t_last + 1]
    if bin_size < 1:
        raise InputError(path, key, f"bin size {bin_size}; expected a positive integer")
    bins = bin_samples(picked, bin_size)
    n_t = picked.shape[1]
    if bins.shape[0] <= n_t:
        raise InputError(path, key, f"{samples.shape[0]} configurations make {bins.shape[0]} bins of "
                         f"{bin_size}, for {n_t} time slices: the covariance would be singular; "
                         f"expected more bins than time slices")
    mean, cov = mean_and_cov_of_mean(bins)
    return np.arange(t_first, t_last + 1, dtype=np.float64), mean, cov, bins.shape[0]


# --- reading and validating -----------------------------------------------------------------------
@dataclass(frozen=True)
class NoiseModel:
    """C_latt(t) and its covariance Σ_latt over the preset's input slices, with chol(Σ_latt)."""
    mean: np.ndarray
    cov: np.ndarray
    t: np.ndarray
    chol: np.ndarray
    source: str
    path: str


def select_slices(path, t_file: np.ndarray, cfg, key: str = "t",
                  needed: str = "the preset's input slices ") -> np.ndarray:
    """Indices of the preset's input slices cfg.t among a file's slices ``t_file``, or an
    InputError naming the slices that are missing (``needed`` says whose slices they are)."""
    missing = sorted(set(cfg.t) - set(t_file))
    if missing:
        raise InputError(path, key, f"time slices {t_file.astype(int).tolist()} lack {needed}"
                         f"{[int(m) for m in missing]} (expected t={cfg['t_min']}..{cfg['t_max']})")
    return np.array([int(np.nonzero(t_file == t)[0][0]) for t in cfg.t])


def load_noise_file(path, cfg) -> NoiseModel:
    """Read and validate a noise file (SPEC §4, §10).

    Accepted layouts: datasets ``mean`` [n], ``cov`` [n, n] and ``t`` [n] at the top level (the
    slices in ``t`` must include the preset's input slices; those are selected); the reference's
    group ``octet(0)`` with ``mean`` and ``cov`` over exactly the preset's slices; or per-
    configuration ``samples`` [N_cfg, n] (with ``t``), whose mean and covariance of the mean are
    computed.  Checks: shapes agree, values finite, Σ symmetric positive definite.
    """
    with open_h5(path, "noise file (mean, cov, t of a lattice correlator)") as h5:
        group = h5["octet(0)"] if "octet(0)" in h5 and "mean" not in h5 else h5
        source = str(h5.attrs.get("source", "unknown"))
        if "samples" in group and "mean" not in group:
            samples = read_dataset(group, "samples", shape=(None, None))
            if samples.shape[0] < 2:
                raise InputError(path, "samples", f"{samples.shape[0]} configuration(s); expected at least 2")
            mean, cov = mean_and_cov_of_mean(samples)
        else:
            mean = read_dataset(group, "mean", shape=(None,))
            cov = read_dataset(group, "cov", shape=(len(mean), len(mean)))
        if "t" in group:
            t_file = read_dataset(group, "t", shape=(len(mean),))
        elif len(mean) == cfg.n_t:
            t_file = cfg.t
        else:
            raise InputError(path, "mean", f"length {len(mean)} and no 't' dataset; expected "
                             f"{cfg.n_t} values for the preset's slices t={cfg['t_min']}..{cfg['t_max']}")
    pick = select_slices(path, t_file, cfg)
    mean, cov = mean[pick], cov[np.ix_(pick, pick)]
    chol = covariance_cholesky(cov, path)
    if mean[0] == 0:
        raise InputError(path, "mean", f"C_latt(t_min={cfg['t_min']}) = 0; the noise scale divides by it")
    return NoiseModel(mean, cov, cfg.t.copy(), chol, source, str(path))


def covariance_cholesky(cov: np.ndarray, path, key: str = "cov") -> np.ndarray:
    """chol(Σ) of a covariance read from ``path``, after checking it is symmetric positive definite."""
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-14 * np.abs(cov).max()):
        raise InputError(path, key, "not symmetric; expected a covariance matrix")
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise InputError(path, key, "not positive definite; expected a covariance matrix") from None


# --- writing ---------------------------------------------------------------------------------------
def write_noise_file(path, mean, cov, t, source: str, n_samples: int, cfg, **attrs) -> Path:
    """Write a noise file (SPEC §10) atomically, checked by the loader before it gets its name.

    ``cfg`` is the preset the file is checked against (its input slices must be among ``t``);
    its provenance and ``attrs`` are recorded as attributes.
    """
    path = Path(path)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("mean", data=np.asarray(mean, dtype=np.float64))
            h5.create_dataset("cov", data=np.asarray(cov, dtype=np.float64))
            h5.create_dataset("t", data=np.asarray(t, dtype=np.float64))
            write_attrs(h5, provenance(cfg, source=source, n_samples=int(n_samples), **attrs))
        try:
            load_noise_file(tmp, cfg)
        except InputError as err:
            raise InputError(path, err.key, err.problem) from None
    return path

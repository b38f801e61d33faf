"""Noise input files (method §4, §10): from per-configuration correlator samples to a noise file.

A noise file holds a lattice correlator's mean C_latt(t) and the covariance OF THE MEAN
Σ_latt(t, t') over time slices t (datasets ``mean`` [n_t], ``cov`` [n_t, n_t], ``t`` [n_t]),
with attributes ``source`` and ``n_samples`` (the number of independent samples -- bins -- the
mean was taken over) and the provenance of every output.  This module owns the format: it writes
it (``write_noise_file``) and reads and validates it (``load_noise_file``, giving a ``NoiseModel``
on the preset's input slices, picked by ``select_slices``, the one selector of time slices that
prediction uses for user files too).

Per-configuration data (read by correlator_files.py, in any of its formats) [N_cfg, n] over
time slices t (by default the columns t = 0, 1, ..., n-1): optional fold of a periodic correlator
(C(t) + C(T−t))/2 with T = n (symmetric mesons; a baryon's backward state is its parity partner,
so do not fold it); the time slices t_first..t_last selected; consecutive configurations averaged
in bins of b (N_cfg -> N_cfg // b bins, the last N_cfg % b configurations dropped); then
mean = average over bins, cov = sample covariance of the bins / N_bins, checked (every slice
fluctuates, no slice a linear combination of the others) with a message naming the input.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from correlator_files import bin_samples, describe_slices, fold_periodic
from io_utils import InputError, atomic_output, open_h5, provenance, read_dataset, write_attrs

# a slice whose variance is explained by the earlier slices to all but this fraction makes the
# covariance numerically singular (real correlators: >= 7e-4 for HPQCD's η_s, 1e-2 for the stand-in)
MIN_UNEXPLAINED = 1e-10


# --- from samples to the mean and the covariance of the mean -------------------------------------
def mean_and_cov_of_mean(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over samples [N, n] and the covariance of that mean: Σ = S / N, S the sample covariance.

    The covariance is summed element by element (einsum, no BLAS), so it is exactly symmetric and
    does not depend on the BLAS library or its thread count.
    """
    n = samples.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):      # overflow: inf, refused by check_covariance
        mean = samples.mean(axis=0)
        dev = samples - mean
        cov = np.einsum("it,is->ts", dev, dev) / ((n - 1) * n)
    return mean, cov


def noise_from_samples(samples: np.ndarray, t_first: int, t_last: int, bin_size: int = 1,
                       fold: bool = False, path="samples", key=None, t_columns=None):
    """(t, mean, cov of the mean, n_bins) from samples [N_cfg, n] over the time slices
    ``t_columns`` (default t = 0..n-1; module doc).  Bad input names ``path`` and ``key``."""
    if fold:
        samples = fold_periodic(samples)
    t_columns = np.arange(samples.shape[1]) if t_columns is None or fold else np.asarray(t_columns)
    wanted = np.arange(t_first, t_last + 1)
    if t_first > t_last or not set(wanted) <= set(t_columns.tolist()):
        raise InputError(path, key, f"time slices {t_first}..{t_last} requested; the "
                         f"{'folded ' if fold else ''}samples have t = {describe_slices(t_columns)}")
    columns = [int(np.nonzero(t_columns == t)[0][0]) for t in wanted]
    contiguous = columns == list(range(columns[0], columns[0] + len(columns)))   # then a view, as always
    picked = samples[:, columns[0]:columns[-1] + 1] if contiguous else samples[:, columns]
    if bin_size < 1:
        raise InputError(path, key, f"bin size {bin_size}; expected a positive integer")
    bins = bin_samples(picked, bin_size)
    n_t = picked.shape[1]
    if bins.shape[0] <= n_t:
        raise InputError(path, key, f"{samples.shape[0]} configurations make {bins.shape[0]} bins of "
                         f"{bin_size}, for {n_t} time slices: the covariance would be singular; "
                         f"expected more bins than time slices")
    mean, cov = mean_and_cov_of_mean(bins)
    check_covariance(mean, cov, wanted, path, key)
    return wanted.astype(np.float64), mean, cov, bins.shape[0]


def check_covariance(mean: np.ndarray, cov: np.ndarray, t: np.ndarray, path, key) -> None:
    """A mean and covariance computed from the data of ``path``: finite (no overflow), every slice
    fluctuates (beyond round-off) and none is a linear combination of the earlier ones, else an InputError naming
    the input and the slice."""
    overflow = np.nonzero(~np.isfinite(mean) | ~np.all(np.isfinite(cov), axis=0))[0]
    if len(overflow):
        raise InputError(path, key, f"the mean or its covariance overflows float64 at t = "
                         f"{describe_slices(t[overflow])} (|values| up to {np.abs(mean).max():.3g}: their "
                         "squares exceed 1.8e308); expected values whose squares are finite (rescale them)")
    flat = np.nonzero(np.sqrt(np.diag(cov)) <= 1e-12 * np.abs(mean))[0]
    if len(flat):
        raise InputError(path, key, f"zero variance at t = {describe_slices(t[flat])}: every bin has the same "
                         "value there (a constant column, or identical configurations); expected fluctuating data")
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    for k in range(1, len(t) + 1):     # the variance of slice k left unexplained by the earlier ones
        try:
            unexplained = np.linalg.cholesky(corr[:k, :k])[-1, -1] ** 2
        except np.linalg.LinAlgError:
            unexplained = 0.0
        if unexplained < MIN_UNEXPLAINED:
            raise InputError(path, key, f"the covariance of the mean is singular at t = {int(t[k - 1])}: "
                             f"there the bins are a linear combination of t = {describe_slices(t[:k - 1])} "
                             "(a duplicated or derived column?); expected independent time slices")


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
    """Read and validate a noise file (method §4, §10).

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
    """Write a noise file (method §10) atomically, checked by the loader before it gets its name.

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

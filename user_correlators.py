"""A user's correlator, from its file to the checked samples the networks predict (method §8, §10).

``read_user_samples`` reads the file (any format of correlator_files.py), checks its geometry
against the preset (the kernel and T, stated by the file or given), folds, selects the networks'
input slices, and bins and resamples per-configuration data (correlator_files.bin_samples,
resample), or draws samples from a mean and covariance: the one path from a user's file to the
``InputSamples`` of prediction_files.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cli import EXPECTED_ERRORS
from correlator_files import (
    Correlator,
    bin_samples,
    describe_slices,
    fold_correlator,
    read_correlator,
    read_correlators,
    resample,
)
from io_utils import InputError
from mocks import MOCKS
from noise_files import covariance_cholesky, select_slices
from prediction_files import InputSamples
from roles import SAMPLE_KINDS
from sigma_model_utils import KERNELS, rng_for


def check_geometry(corr, cfg, kernel: str | None, T: int | None) -> None:
    """The kernel and T of the user's correlator (its file's statement, or the arguments) must be
    the preset's: the networks only know the geometry they were trained on."""
    path = corr.path
    for key, given, stated, want in (("kernel", kernel, corr.kernel, cfg["kernel"]), ("T", T, corr.T, cfg["T"])):
        value = given if given is not None else stated
        if value is None:
            raise InputError(path, key, f"not stated; give the attribute '{key}' (or --{key.lower()}) so the "
                             f"geometry can be checked (the networks were trained with {key} = {want})")
        if given is not None and stated is not None and given != stated:
            raise InputError(path, key, f"the file says {stated!r} but --{key.lower()} says {given!r}")
        if value != want:
            known = f" (kernels: {KERNELS})" if key == "kernel" else ""
            raise InputError(path, key, f"{value!r}, but the networks were trained with {key} = {want!r}"
                             f"{known}; a geometry mismatch")


def read_user_samples(path, cfg, name: str, kind: str | None = None, kernel: str | None = None,
                      T: int | None = None, fmt: str | None = None, tag: str | None = None,
                      fold: bool = False, bin_size: int = 1, resampling: str = "bootstrap",
                      all_samples: bool = False) -> InputSamples:
    """The user's correlator in the file ``path`` (``user_samples`` of ``read_correlator``)."""
    return user_samples(read_correlator(path, fmt, tag), cfg, name, kind, kernel, T, fold, bin_size,
                        resampling, all_samples)


def user_samples(corr, cfg, name: str, kind: str | None = None, kernel: str | None = None,
                 T: int | None = None, fold: bool = False, bin_size: int = 1, resampling: str = "bootstrap",
                 all_samples: bool = False) -> InputSamples:
    """The user's correlator (a correlator_files.Correlator, any format), in the training geometry.

    What the rows are (``kind``, else what the file says: HDF5 attribute ``sample_kind``; every
    other format holds per-configuration data):
    - configurations: optionally folded, binned in bins of ``bin_size``, then resampled by the tool:
      N_boot bootstrap means (configurations drawn with replacement, the stream
      ``rng_for(seed, 'user-bootstrap:NAME')``) or the N_bins jackknife means (``resampling``);
    - bootstrap or jackknife samples: used as they are (optionally folded); N bootstrap samples
      must be N_boot of the settings, unless ``all_samples`` (--n-boot all) takes the file's
      samples as they are, however many, and records n_boot = "all";
    - a mean + the covariance of the mean (HDF5 ``mean``, ``cov``): N_boot draws of N(mean, cov),
      seeded by ``rng_for(seed, 'user-samples:NAME')``.
    The samples record their number, their origin and the N_boot they were made with
    (prediction_files.InputSamples).
    The file's time slices (HDF5 ``t``; else t = 0, 1, ...) must include the networks' input
    slices, and the kernel and T (stated by the file or given) must be the preset's.
    """
    path = corr.path
    kind = kind or corr.kind
    if corr.t is None and (corr.values is None or kind != "configurations"):
        raise InputError(path, "t", "missing; expected the time slices [n] of the correlator")
    check_geometry(corr, cfg, kernel, T)
    if fold:
        corr = fold_correlator(corr, cfg["T"])
    pick = select_slices(path, corr.slices, cfg, needed="")
    if corr.n_t != cfg.n_t:
        print(f"note: {path}: using slices t={cfg['t_min']}..{cfg['t_max']} of the file's "
              f"{describe_slices(corr.slices)}")
    source = {"input": f"user file {path}", "file": str(path), "format": corr.fmt, "key": corr.key,
              "folded": bool(fold), **corr.details}
    if bin_size != 1 and kind != "configurations":
        raise InputError(path, corr.key, f"--bin {bin_size}: binning is for per-configuration data, "
                         f"the file holds {kind or 'a mean and covariance'}")
    n_boot = int(cfg["n_boot"])
    if all_samples and (corr.values is None or kind == "configurations"):
        raise InputError(path, corr.key, f"--n-boot all takes a file's bootstrap or jackknife samples as they "
                         f"are; this file holds {kind or 'a mean and covariance'}, from which the tool makes "
                         f"n_boot = {n_boot} samples (drop --n-boot all; --set n_boot=N chooses their number)")
    if corr.values is None:
        if kind == "jackknife":
            raise InputError(path, "mean", "a mean and covariance give bootstrap-like draws, not jackknife samples")
        mean, cov = corr.mean[pick], corr.cov[np.ix_(pick, pick)]
        chol = covariance_cholesky(cov, path)
        z = rng_for(cfg, f"user-samples:{name}").standard_normal((n_boot, cfg.n_t))
        samples = mean + z @ chol.T
        kind, origin = "bootstrap", "draws from a mean and covariance"
        source.update(layout="mean+cov", n_boot=n_boot, seed=int(cfg["seed"]),
                      rng=f"rng_for(seed, 'user-samples:{name}')")
    elif kind == "configurations":
        bins = bin_samples(corr.values[:, pick], bin_size)
        if len(bins) < 2:
            raise InputError(path, corr.key, f"{len(corr.values)} configuration(s) make {len(bins)} bin(s) of "
                             f"{bin_size}; expected at least 2 to resample")
        samples = resample(bins, resampling, n_boot, rng_for(cfg, f"user-bootstrap:{name}"))
        source.update(layout="configurations", n_configurations=len(corr.values), bin_size=bin_size,
                      n_bins=len(bins), resampling=resampling)
        if resampling == "bootstrap":
            source.update(n_boot=n_boot, seed=int(cfg["seed"]), rng=f"rng_for(seed, 'user-bootstrap:{name}')")
        kind, origin = resampling, f"{resampling} of configurations"
        n_boot = n_boot if resampling == "bootstrap" else "not used"
    elif kind in SAMPLE_KINDS:
        samples = corr.values[:, pick]
        if len(samples) < 2:
            raise InputError(path, corr.key, f"{len(samples)} sample(s); expected at least 2")
        if kind == "bootstrap" and not all_samples and len(samples) != n_boot:
            raise InputError(path, corr.key, f"{len(samples)} bootstrap samples, the settings say n_boot = "
                             f"{n_boot}: use --n-boot all (take the file's samples as they are) or "
                             f"--set n_boot={len(samples)}")
        origin = f"{kind} samples given"
        n_boot = "not used" if kind == "jackknife" else "all" if all_samples else n_boot
        source.update(layout="samples")
    else:
        raise InputError(path, "sample_kind", f"{kind!r}; say whether the rows are configurations, bootstrap "
                         "or jackknife samples (attribute 'sample_kind' or --kind)")
    return InputSamples(name, np.ascontiguousarray(samples, dtype=np.float64), kind, origin, n_boot, source=source)


def describe_inputs(inputs: InputSamples) -> str:
    """One line: what the networks predict and how it was made from the user's file."""
    s = inputs.source
    made = {"configurations": f"{s.get('n_configurations')} configurations -> {s.get('n_bins')} bins of "
                              f"{s.get('bin_size')} -> ",
            "mean+cov": "mean and covariance -> "}.get(s.get("layout"), "")
    seeded = f" (seed {s['seed']}, stream {s['rng']})" if "rng" in s else ""
    return (f"{s.get('file')} ({s.get('format')}{', folded' if s.get('folded') else ''}): {made}"
            f"{len(inputs.samples)} {inputs.kind} samples{seeded}"
            f"{' (all of the file, as they are: --n-boot all)' if inputs.n_boot == 'all' else ''}")


# --- several correlators: their names ---------------------------------------------------------------
NOT_A_NAME = re.compile(r"[^A-Za-z0-9_-]+")
FORMAT_SUFFIXES = (".json.gz", ".json", ".hdf5", ".h5", ".gvar", ".npy", ".txt", ".dat", ".data", ".csv")


@dataclass
class NamedCorrelator:
    """A correlator of the user's files and the name of its result files, or the error that stopped
    reading its file (``name`` None)."""
    name: str | None
    path: str
    correlator: Correlator | None = None
    error: Exception | None = None

    @property
    def label(self) -> str:
        return self.name or self.path

    def read(self) -> Correlator:
        if self.error is not None:
            raise self.error
        return self.correlator


def file_stem(path) -> str:
    """The file's name without its format's suffix (``corr.json.gz`` -> ``corr``)."""
    name = Path(path).name
    suffix = next((s for s in FORMAT_SUFFIXES if name.lower().endswith(s) and len(name) > len(s)), "")
    return name[:len(name) - len(suffix)]


def correlator_names(paths, name: str | None = None, fmt: str | None = None, tag: str | None = None) -> list:
    """The correlators of the user's files, each file read once (correlator_files.read_correlators),
    as [NamedCorrelator], in the order given.

    Each correlator's name: its file's name without the format's suffix, followed by ``_KEY`` when
    the file holds several (an HDF5 group, a pyerrors dictionary's key, a gvar tag; ``--tag`` picks
    one, and the name is then the file's); characters other than letters, digits, - and _ become _.
    ``name`` (--name) is the name of a single correlator, and the prefix NAME_ of several.  A file
    that cannot be read keeps its error, raised when its correlator is read (the others go on); two
    correlators with one name are refused before anything is done (InputError).
    """
    read = []
    for path in paths:
        try:
            read.append((str(path), read_correlators(path, fmt, tag)))
        except EXPECTED_ERRORS as err:
            read.append((str(path), err))
    single = len(read) == 1 and isinstance(read[0][1], dict) and len(read[0][1]) == 1
    named, taken = [], {}
    for path, found in read:
        if not isinstance(found, dict):
            named.append(NamedCorrelator(None, path, error=found))
            continue
        for key, corr in found.items():
            own = NOT_A_NAME.sub("_", file_stem(path) + ("" if key is None or tag is not None else f"_{key}"))
            full = name if single and name else f"{name}_{own}" if name else own
            where = f"{path}" + ("" if key is None else f" ({key})")
            if not full or full in MOCKS:
                raise InputError(path, key, f"gives the name {full!r}: rename the file, or give --name "
                                 f"(letters, digits, - and _; not a mock's name {MOCKS})")
            if full in taken:
                raise InputError(path, key, f"gives the name {full!r}, as {taken[full]} does (names come from "
                                 "the file names and the keys of a file holding several): rename one")
            taken[full] = where
            named.append(NamedCorrelator(full, path, corr))
    return named

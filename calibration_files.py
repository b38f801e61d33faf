"""The calibration file of one σ, ``calibration/calibration_sigma{100σ}.h5``: its only writer and
reader (the method: calibration.py).

    Q/{centre} [n_bins, N_E]       the conformal factors of each centre (calibration.CENTRES present in
                                   the attribute ``centres``: ``audience`` always, ``paper`` and
                                   ``median`` with the interval networks), per bin and energy (one
                                   bin but for the audience centre)
    edges/{centre} [n_bins − 1, N_E]  the inner bin edges of the feature (only with two bins or more)
    S [N_E]                        the audience centre's marginal factor (the baseline ``total_scaled``)
    R/{centre} [N_E, N_E]          the correlation over the calibration set of the signed scores
                                   (c − y)/(Q·w)
    coverage/{centre} [N_E]        the share of the calibration items covered by c ± Q·w (≥ 0.6827 by
                                   construction; a check, not a promise for new data)
    energies [N_E]                 the energy grid
    attrs: centres (JSON list), n_bins, feature (what the bins are cut on), space (the calibration
    space), n_cal, n_boot_cal, calibration_seed, checkpoints (JSON {path relative to --root:
    SHA-256} of every network whose predictions made the file), and the provenance of io_utils.

Every dataset carries a Fletcher-32 checksum (io_utils.checksummed_dataset, as the training files),
and its values are checked when read (``datasets``: the factors positive and finite, the edges
finite and in order, R a correlation matrix, the coverage a share): a damaged or implausible file
is one InputError naming the file, the key and the command that makes it again, never a wrong
result.  A file of an earlier layout (without the attribute ``centres``) is refused the same way.

The checkpoints' SHA-256 bind the factors to the networks: ``check_networks`` refuses a calibration
made with other networks than those on disk now (retrained, or copied from another audience).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration import CENTRES, FEATURE, Factors, calibrated_ensembles
from interval_outputs import interval_checkpoints
from io_utils import (
    POSITIVE,
    SHARE,
    InputError,
    checksummed_dataset,
    file_sha256,
    h5_output,
    open_h5,
    provenance,
    read_correlation,
    read_dataset,
    read_values,
    recorded_fingerprint,
    write_attrs,
)
from tasks import rewrite_remedy


@dataclass
class Calibration:
    """The conformal factors of one σ and what they were made of."""
    factors: dict           # centre -> calibration.Factors
    S: np.ndarray           # [N_E]
    n_bins: int
    space: str
    n_cal: int
    n_boot_cal: int
    seed: int
    checkpoints: dict       # path relative to --root -> SHA-256
    path: Path | None = None


def calibration_networks(cfg, sigma_gev: float) -> list:
    """The checkpoints a calibration of σ is made with: every replica of the paper's ensembles
    (calibration.calibrated_ensembles) and, with interval_networks, every interval network."""
    return ([cfg.checkpoint(sigma_gev, ensemble, r) for ensemble in calibrated_ensembles(cfg)
             for r in range(cfg["n_replicas"])] + (interval_checkpoints(cfg, sigma_gev) if cfg["interval_networks"]
                                                   else []))


def checkpoint_hashes(cfg, paths) -> dict:
    """{path relative to --root: SHA-256} of the networks a calibration is made with (a missing one
    is an InputError naming the command that trains it, or writes it again from its state)."""
    for path in paths:
        if not Path(path).is_file():
            raise InputError(path, None, "missing: a calibration is made with, and checked against, every "
                             f"replica of the audience and every interval network; {rewrite_remedy(cfg, path)}")
    # relative by name, not through links: a model folder that is a link (to scratch storage, say)
    # names the same networks
    return {Path(os.path.relpath(os.path.abspath(p), os.path.abspath(cfg.root))).as_posix(): file_sha256(p)
            for p in paths}


# the checks of the bin edges: finite (read_dataset), and in order along the bins at each energy
IN_ORDER = "bin edges in order (non-decreasing along the bins)"


def datasets(n_e: int, centres, n_bins: dict) -> dict:
    """Every dataset of the file: {key: how it is read and checked (a function of the open file and the
    key)}, for the ``centres`` with their numbers of bins."""
    out = {"S": _values((n_e,), POSITIVE), "energies": lambda h5, key: read_dataset(h5, key, (n_e,))}
    for c in centres:
        out[f"Q/{c}"] = _values((n_bins[c], n_e), POSITIVE)
        if n_bins[c] > 1:
            out[f"edges/{c}"] = _edges((n_bins[c] - 1, n_e))
        out[f"R/{c}"] = lambda h5, key: read_correlation(h5, key, n_e)
        out[f"coverage/{c}"] = _values((n_e,), SHARE)
    return out


def _values(shape, rule):
    return lambda h5, key: read_values(h5, key, shape, rule)


def _edges(shape):
    def read(h5, key):
        edges = read_dataset(h5, key, shape)
        if np.any(np.diff(edges, axis=0) < 0):
            raise InputError(h5.file.filename, key, f"edges out of order; expected {IN_ORDER}")
        return edges
    return read


def remake_command(cfg, sigma_gev: float) -> str:
    """The command that makes the calibration file of σ again (``--force``: an unreadable file may
    still record the fingerprint of an up-to-date one)."""
    return cfg.command("calibrate_sigma.py", "--sigma", sigma_gev, "--force")


def write_calibration(cfg, sigma_gev: float, cal: Calibration, **extra) -> Path:
    """The calibration file of σ, atomically, every dataset checksummed, with the provenance
    (``extra`` attributes added)."""
    path = cfg.calibration_file(sigma_gev)
    values = {"S": cal.S, "energies": cfg.energies}
    for c, f in cal.factors.items():
        values.update({f"Q/{c}": f.Q, f"R/{c}": f.R, f"coverage/{c}": f.coverage})
        if len(f.edges):
            values[f"edges/{c}"] = f.edges
    with h5_output(path) as h5:          # built in memory: a full disk is one OutputError
        for key, data in values.items():
            checksummed_dataset(h5, key, data=np.asarray(data, dtype=np.float64))
        write_attrs(h5, provenance(cfg, centres=json.dumps(list(cal.factors)), n_bins=cal.n_bins, feature=FEATURE,
                                   space=cal.space, n_cal=cal.n_cal, n_boot_cal=cal.n_boot_cal,
                                   calibration_seed=cal.seed, sigma_gev=float(sigma_gev),
                                   checkpoints=json.dumps(cal.checkpoints, sort_keys=True), **extra))
    return path


def up_to_date(cfg, sigma_gev: float, made_of: str) -> bool:
    """Whether the calibration file of σ exists and records the fingerprint ``made_of`` (attribute
    ``fingerprint``, written by calibrate_sigma.py)."""
    return recorded_fingerprint(cfg.calibration_file(sigma_gev)) == made_of


def read_calibration(cfg, sigma_gev: float) -> Calibration:
    """The calibration of σ, every dataset checked (``datasets``); a missing, damaged or malformed file
    is one InputError naming it, the key and the command that makes it (again)."""
    path = cfg.calibration_file(sigma_gev)
    if not path.is_file():
        raise InputError(path, None, f"missing: calibrate first ({cfg.command('calibrate_sigma.py')})")
    try:
        return _read_calibration(cfg, path)
    except InputError as err:
        raise InputError(path, err.key, f"{err.problem}; make it again with `{remake_command(cfg, sigma_gev)}`") \
            from None


def _read_calibration(cfg, path: Path) -> Calibration:
    with open_h5(path, "calibration file") as h5:
        attrs = dict(h5.attrs)
        try:
            centres, n_bins = json.loads(attrs["centres"]), int(attrs["n_bins"])
            made = (str(attrs["space"]), int(attrs["n_cal"]), int(attrs["n_boot_cal"]),
                    int(attrs["calibration_seed"]), json.loads(attrs["checkpoints"]))
        except (KeyError, ValueError, TypeError) as err:
            raise InputError(path, None, "attributes centres, n_bins, space, n_cal, n_boot_cal, calibration_seed, "
                             f"checkpoints expected ({err}; a file of an earlier layout has no centres)") from None
        unknown = set(centres) - set(CENTRES)
        if unknown or "audience" not in centres or n_bins < 1:
            raise InputError(path, "centres", f"{centres} with n_bins={n_bins}; expected the audience centre and "
                             f"others of {CENTRES}, n_bins >= 1")
        bins = {c: n_bins if c == "audience" else 1 for c in centres}
        read = {key: check(h5, key) for key, check in datasets(int(cfg["n_energies"]), centres, bins).items()}
    if not np.allclose(read["energies"], cfg.energies, rtol=1e-12, atol=0):
        raise InputError(path, "energies", "another energy grid than the preset's")
    factors = {c: Factors(read[f"Q/{c}"], read.get(f"edges/{c}", np.empty((0, len(cfg.energies)))), read[f"R/{c}"],
                          read[f"coverage/{c}"]) for c in centres}
    return Calibration(factors, read["S"], n_bins, *made, path)


def check_networks(cfg, cal: Calibration, paths) -> None:
    """Refuse a calibration made with other networks than ``paths`` (their SHA-256 now).  A network
    whose file is no readable checkpoint (truncated, damaged) is named first, with the training
    command that writes it again from its state: calibrating again would not help."""
    now = checkpoint_hashes(cfg, paths)
    if now != cal.checkpoints:
        changed = sorted(set(now) ^ set(cal.checkpoints) | {p for p in now if cal.checkpoints.get(p) not in
                                                            (None, now[p])})
        from checkpoints import checkpoint_problem  # torch, only to say why a network differs
        for path in (Path(cfg.root) / p for p in changed if p in now):
            problem = checkpoint_problem(path)
            if problem:
                raise InputError(path, None, f"{problem}: {rewrite_remedy(cfg, path)}")
        raise InputError(cal.path, "checkpoints", f"made with other networks than those under {cfg.root} now "
                         f"({', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} differ): calibrate "
                         "again with the networks you predict with")

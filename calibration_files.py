"""The calibration file of one σ, ``calibration/calibration_sigma{100σ}.h5``: its only writer and
reader (the method: calibration.py).

    Q/{centre} [N_E]        the conformal factor of the interval networks' width, per centre
                            (calibration.CENTRES: ``paper`` = ρ̄_Nmax, ``median`` = the networks' q_50)
    S [N_E]                 the conformal factor of the paper's σ_tot (the baseline ``total_scaled``)
    R/{centre} [N_E, N_E]   the correlation over the calibration set of the signed scores (c − y)/w
    coverage/{centre} [N_E] the share of the calibration items covered by c ± Q·w (≥ 0.6827 by
                            construction; a check, not a promise for new data)
    energies [N_E]          the energy grid
    attrs: space (the calibration space), n_cal, n_boot_cal, seed, stream, checkpoints (JSON
    {path relative to --root: SHA-256} of every network whose predictions made the file), and the
    provenance of io_utils.

Every dataset carries a Fletcher-32 checksum (io_utils.checksummed_dataset, as the training files),
and its values are checked when read (``datasets``: the factors positive and finite, R a correlation
matrix, the coverage a share): a damaged or implausible file is one InputError naming the file, the
key and the command that makes it again, never a wrong result.  A file written before the checksums
(none on its datasets) is read, its values checked all the same.

The checkpoints' SHA-256 bind the factors to the networks: ``check_networks`` refuses a calibration
made with other networks than those on disk now (retrained, or copied from another audience).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration import CENTRES, calibrated_ensembles
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
    Q: dict                 # centre -> [N_E]
    S: np.ndarray           # [N_E]
    R: dict                 # centre -> [N_E, N_E]
    coverage: dict          # centre -> [N_E], on the calibration set itself
    space: str
    n_cal: int
    n_boot_cal: int
    seed: int
    checkpoints: dict       # path relative to --root -> SHA-256
    path: Path | None = None


def calibration_networks(cfg, sigma_gev: float) -> list:
    """The checkpoints a calibration of σ is made with: every replica of the paper's ensembles
    (calibration.calibrated_ensembles) and every interval network."""
    return ([cfg.checkpoint(sigma_gev, ensemble, r) for ensemble in calibrated_ensembles(cfg)
             for r in range(cfg["n_replicas"])] + interval_checkpoints(cfg, sigma_gev))


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


def datasets(n_e: int) -> dict:
    """Every dataset of the file: {key: how it is read and checked (a function of the open file and the
    key)}.  A new per-energy factor is one more entry: ``_values((n_e,), POSITIVE)``, or
    ``_values((n_e, None), POSITIVE)`` for factors per energy and bin."""
    return {**{f"Q/{c}": _values((n_e,), POSITIVE) for c in CENTRES},
            "S": _values((n_e,), POSITIVE),
            **{f"R/{c}": lambda h5, key: read_correlation(h5, key, n_e) for c in CENTRES},
            **{f"coverage/{c}": _values((n_e,), SHARE) for c in CENTRES},
            "energies": lambda h5, key: read_dataset(h5, key, (n_e,))}


def _values(shape, rule):
    return lambda h5, key: read_values(h5, key, shape, rule)


def remake_command(cfg, sigma_gev: float) -> str:
    """The command that makes the calibration file of σ again (``--force``: an unreadable file may
    still record the fingerprint of an up-to-date one)."""
    return cfg.command("calibrate_sigma.py", "--sigma", sigma_gev, "--force")


def write_calibration(cfg, sigma_gev: float, cal: Calibration, **extra) -> Path:
    """The calibration file of σ, atomically, every dataset checksummed, with the provenance
    (``extra`` attributes added)."""
    path = cfg.calibration_file(sigma_gev)
    values = {**{f"Q/{c}": cal.Q[c] for c in CENTRES}, "S": cal.S, **{f"R/{c}": cal.R[c] for c in CENTRES},
              **{f"coverage/{c}": cal.coverage[c] for c in CENTRES}, "energies": cfg.energies}
    with h5_output(path) as h5:          # built in memory: a full disk is one OutputError
        for key, data in values.items():
            checksummed_dataset(h5, key, data=np.asarray(data, dtype=np.float64))
        write_attrs(h5, provenance(cfg, space=cal.space, n_cal=cal.n_cal, n_boot_cal=cal.n_boot_cal,
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
        read = {key: check(h5, key) for key, check in datasets(int(cfg["n_energies"])).items()}
        attrs = dict(h5.attrs)
    if not np.allclose(read["energies"], cfg.energies, rtol=1e-12, atol=0):
        raise InputError(path, "energies", "another energy grid than the preset's")
    try:
        made = (str(attrs["space"]), int(attrs["n_cal"]), int(attrs["n_boot_cal"]), int(attrs["calibration_seed"]),
                json.loads(attrs["checkpoints"]))
    except (KeyError, ValueError) as err:
        raise InputError(path, None, f"attributes space, n_cal, n_boot_cal, calibration_seed, checkpoints "
                         f"expected ({err})") from None
    return Calibration({c: read[f"Q/{c}"] for c in CENTRES}, read["S"], {c: read[f"R/{c}"] for c in CENTRES},
                       {c: read[f"coverage/{c}"] for c in CENTRES}, *made, path)


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

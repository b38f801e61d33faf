"""The calibration file of one σ, ``calibration/calibration_sigma{100σ}.h5``: its only writer and
reader (the method: calibration.py).

    Q/{centre} [N_E]        the conformal factor of the interval networks' width, per centre
                            (calibration.CENTRES: ``paper`` = ρ̄_Nmax, ``median`` = the networks' q_50)
    S [N_E]                 the conformal factor of the paper's σ_tot (the baseline ``total_scaled``)
    R/{centre} [N_E, N_E]   the correlation over the calibration set of the signed scores (c − y)/w
    coverage/{centre} [N_E] the share of the calibration items covered by c ± Q·w (≥ 0.6827 by
                            construction; a check, not a promise for new data)
    attrs: space (the calibration space), n_cal, n_boot_cal, seed, stream, checkpoints (JSON
    {path relative to --root: SHA-256} of every network whose predictions made the file), and the
    provenance of io_utils.

The checkpoints' SHA-256 bind the factors to the networks: ``check_networks`` refuses a calibration
made with other networks than those on disk now (retrained, or copied from another audience).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from calibration import CENTRES, calibrated_ensembles
from interval_outputs import interval_checkpoints
from io_utils import (
    InputError,
    atomic_output,
    file_sha256,
    open_h5,
    provenance,
    read_dataset,
    recorded_fingerprint,
    write_attrs,
)


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
    is an InputError)."""
    for path in paths:
        if not Path(path).is_file():
            raise InputError(path, None, "missing: a calibration is made with, and checked against, every "
                             f"replica of the audience and every interval network (train first: "
                             f"{cfg.command('run_pipeline.py')})")
    # relative by name, not through links: a model folder that is a link (to scratch storage, say)
    # names the same networks
    return {Path(os.path.relpath(os.path.abspath(p), os.path.abspath(cfg.root))).as_posix(): file_sha256(p)
            for p in paths}


def write_calibration(cfg, sigma_gev: float, cal: Calibration, **extra) -> Path:
    """The calibration file of σ, atomically, with the provenance (``extra`` attributes added)."""
    path = cfg.calibration_file(sigma_gev)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            for centre in CENTRES:
                h5[f"Q/{centre}"] = cal.Q[centre]
                h5[f"R/{centre}"] = cal.R[centre]
                h5[f"coverage/{centre}"] = cal.coverage[centre]
            h5["S"] = cal.S
            h5["energies"] = cfg.energies
            write_attrs(h5, provenance(cfg, space=cal.space, n_cal=cal.n_cal, n_boot_cal=cal.n_boot_cal,
                                       calibration_seed=cal.seed, sigma_gev=float(sigma_gev),
                                       checkpoints=json.dumps(cal.checkpoints, sort_keys=True), **extra))
    return path


def up_to_date(cfg, sigma_gev: float, made_of: str) -> bool:
    """Whether the calibration file of σ exists and records the fingerprint ``made_of`` (attribute
    ``fingerprint``, written by calibrate_sigma.py)."""
    return recorded_fingerprint(cfg.calibration_file(sigma_gev)) == made_of


def read_calibration(cfg, sigma_gev: float) -> Calibration:
    """The calibration of σ; a missing or malformed file is one InputError naming it and what to run."""
    path = cfg.calibration_file(sigma_gev)
    if not path.is_file():
        raise InputError(path, None, f"missing: calibrate first (python calibrate_sigma.py --preset {cfg.preset}"
                         f"{''.join(' --set ' + o for o in cfg.overrides)} --root {cfg.root})")
    n_e = int(cfg["n_energies"])
    with open_h5(path, "calibration file") as h5:
        Q = {c: read_dataset(h5, f"Q/{c}", (n_e,)) for c in CENTRES}
        R = {c: read_dataset(h5, f"R/{c}", (n_e, n_e)) for c in CENTRES}
        coverage = {c: read_dataset(h5, f"coverage/{c}", (n_e,)) for c in CENTRES}
        S = read_dataset(h5, "S", (n_e,))
        energies = read_dataset(h5, "energies", (n_e,))
        if not np.allclose(energies, cfg.energies, rtol=1e-12, atol=0):
            raise InputError(path, "energies", "another energy grid than the preset's")
        attrs = dict(h5.attrs)
    try:
        return Calibration(Q, S, R, coverage, str(attrs["space"]), int(attrs["n_cal"]), int(attrs["n_boot_cal"]),
                           int(attrs["calibration_seed"]), json.loads(attrs["checkpoints"]), path)
    except (KeyError, ValueError) as err:
        raise InputError(path, None, f"attributes space, n_cal, n_boot_cal, calibration_seed, checkpoints "
                         f"expected ({err})") from err


def check_networks(cfg, cal: Calibration, paths) -> None:
    """Refuse a calibration made with other networks than ``paths`` (their SHA-256 now)."""
    now = checkpoint_hashes(cfg, paths)
    if now != cal.checkpoints:
        changed = sorted(set(now) ^ set(cal.checkpoints) | {p for p in now if cal.checkpoints.get(p) not in
                                                            (None, now[p])})
        raise InputError(cal.path, "checkpoints", f"made with other networks than those under {cfg.root} now "
                         f"({', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} differ): calibrate "
                         "again with the networks you predict with")

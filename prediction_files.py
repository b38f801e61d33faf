"""The prediction file (method §10): its only writer and reader.

One HDF5 file per (input, ensemble, σ), at cfg.prediction_file(...):

    predictions [N, N_r, N_E] (float32, the networks' precision), energy_grid_smeared [N_E],
    true_smeared_rho [N_E] (mocks only), input_samples [N, n_t], replicas [N_r] (their indices),
    clean_correlator [n_t] and measured_correlator [n_t] (C̄; mocks only); attrs: provenance,
    sample_kind, n_samples, sample_origin, n_boot (below), mock, ensemble, sigma_gev, arch, noise
    (the replicas' noise mode, from their checkpoints), checkpoints, missing_checkpoints,
    checkpoint_provenance, input_source, closure_level (mocks only: 1, or 0 for the diagnostic),
    fingerprint.

A file whose ``fingerprint`` says it was made from the same checkpoints (their SHA-256), the same
input samples and the same settings is up to date (``up_to_date``).  Reading (``load_predictions``)
takes every ensemble's file of one input and σ, checks that they predicted the same samples, and
refuses a file made with settings that disagree with the reader's (``check_made_with``).

Every file records how many samples were predicted (``n_samples``), how they were made
(``sample_origin``) and ``n_boot``: the settings' N_boot that made their number or was checked
against it, or "all" (predict_on_user_data.py --n-boot all: a file's bootstrap samples taken as
they are, however many) or "not used" (jackknife samples: one per configuration or bin).  Only a
file with an integer ``n_boot`` (or none: an older file) has its N_boot compared with the reader's.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import h5py
import numpy as np

from interval_outputs import split_quantiles
from io_utils import (
    InputError,
    atomic_output,
    fingerprint,
    open_h5,
    provenance,
    read_dataset,
    recorded_fingerprint,
    write_attrs,
)
from roles import INTERVAL_RUN, REFERENCE

# The rule of check_made_with: a prediction file depends on every setting (the networks' training,
# the geometry, the input's samples, ...) but these, which it is therefore never compared on.
NOT_DEPENDED_ON = {
    "sigmas_gev": "the list of σ: each file is of one σ",
    "nb_list": "the N_b of the training files generated",
    "nrho_list": "the N_ρ of the training files generated",
    "prior_systematic": "it adds an ensemble: each file is compared with its own ensemble's entry",
    "ensembles": "each file is compared with its own ensemble's entry (ensembles.X) only",
    "interval_networks": "whether the interval networks predict too (into their own file)",
    "n_cal": "the calibration set's size (the calibration file's)",
    "n_boot_cal": "the calibration set's bootstrap samples (the calibration file's)",
    "calibrated_centre": "which calibrated centre the analysis recommends",
    "calibration_bins": "the bins of the audience centre's factors (the calibration file's)",
}
NOT_RECORDED = "not recorded (a file of an older version)"


@dataclass
class InputSamples:
    """The samples every network predicts, and what is known about them (all of it is recorded)."""
    name: str                      # the {mock} of the file names: O3, delta_tanh or the user's name
    samples: np.ndarray            # [N, n_t] float64 on the preset's slices cfg.t
    kind: str                      # "bootstrap" or "jackknife" (budget.sample_std)
    origin: str                    # how they were made: "bootstrap of configurations", "bootstrap
                                   # samples given", "draws from a mean and covariance", ...
    n_boot: int | str              # the N_boot their number was made with or checked against, or
                                   # "all" (a file's samples as they are) or "not used" (jackknife)
    truth: dict | None = None      # σ_gev -> exact ρ_σ(E_k) [N_E] (mocks only)
    clean: np.ndarray | None = None  # the mock's clean correlator [n_t]
    source: dict = field(default_factory=dict)   # how they were made (recorded in every file)
    measured: np.ndarray | None = None   # the mock's measurement C̄ [n_t] (closure.py)
    closure_level: int | None = None     # the mock's closure level (closure.py); None for data


@dataclass
class PredictionSet:
    """The prediction files of one input and σ: {ensemble: P[b, r, E] or None if missing}, and the
    input samples they all predicted."""
    mock: str
    sigma_gev: float
    predictions: dict
    energies: np.ndarray
    truth: np.ndarray | None
    kind: str
    files: dict
    samples: np.ndarray                 # input_samples [N, n_t], the same in every file
    closure_level: int | None = None    # mocks: 1 (measured once) or 0 (diagnostic); None for data
    made_with: dict | None = None       # {ensemble: the stored configuration of its file, or None}
    origin: str = NOT_RECORDED          # the files' sample_origin and n_boot (InputSamples)
    n_boot: int | str = NOT_RECORDED
    input_checks: dict | None = None    # {ensemble: its file's input_check (prediction.input_check), or None}


# --- writing ---------------------------------------------------------------------------------------
def prediction_fingerprint(cfg, inputs: InputSamples, digests, missing) -> str:
    """What a prediction file is made of: the checkpoints' contents (``digests``: [(replica, SHA-256
    of its checkpoint)]), the samples, the settings."""
    return fingerprint({"checkpoints": digests,
                        "missing": [str(p) for p in missing],
                        "samples": hashlib.sha256(np.ascontiguousarray(inputs.samples).tobytes()).hexdigest(),
                        "kind": inputs.kind, "origin": inputs.origin, "n_boot": inputs.n_boot,
                        "source": inputs.source, "values": cfg.values_json()})


def up_to_date(path, made_of: str) -> bool:
    """Whether the file at ``path`` records the fingerprint ``made_of``."""
    return recorded_fingerprint(path) == made_of


def write_prediction_file(cfg, inputs: InputSamples, sigma_gev, ensemble, P, present, missing, metas,
                          made_of: str, input_check: dict):
    """The predictions ``P`` [N, N_r, N_E] of the replicas ``present`` [(replica, checkpoint)] with
    their checkpoints' ``metas`` and how far the input lies from their training (``input_check``,
    prediction.input_check), atomically; returns the path."""
    path = cfg.prediction_file(inputs.name, ensemble, sigma_gev)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("predictions", data=np.asarray(P, dtype=np.float32))
            h5["energy_grid_smeared"] = cfg.energies
            h5["input_samples"] = inputs.samples
            h5["replicas"] = np.array([r for r, _ in present], dtype=np.int64)
            if inputs.truth is not None:
                h5["true_smeared_rho"] = inputs.truth[sigma_gev]
            if inputs.clean is not None:
                h5["clean_correlator"] = inputs.clean
            if inputs.measured is not None:
                h5["measured_correlator"] = inputs.measured
            level = {} if inputs.closure_level is None else {"closure_level": int(inputs.closure_level)}
            write_attrs(h5, provenance(
                cfg, mock=inputs.name, ensemble=ensemble, sigma_gev=float(sigma_gev),
                sample_kind=inputs.kind, n_samples=len(inputs.samples), sample_origin=inputs.origin,
                n_boot=inputs.n_boot, arch=metas[0]["arch"],
                noise=str(metas[0].get("noise", "unknown")),     # the replicas' noise mode (method §7)
                checkpoints=json.dumps([str(p) for _, p in present]),
                missing_checkpoints=json.dumps([str(p) for p in missing]),
                checkpoint_provenance=json.dumps([m["provenance"] for m in metas]),
                input_source=json.dumps(inputs.source), input_check=json.dumps(input_check),
                fingerprint=made_of, **level))
    return path


# --- reading ---------------------------------------------------------------------------------------
def check_made_with(cfg, path, attrs, ensemble: str) -> dict | None:
    """The stored configuration of one prediction file (None if it has none); a setting that shaped
    the file (every key but NOT_DEPENDED_ON, and the file's own ensemble) and disagrees with it is refused,
    naming both values.  N_boot shaped the file only if its ``n_boot`` attribute is an integer (or
    absent): not for samples taken as they are ("all") or jackknife samples ("not used")."""
    if "config" not in attrs:
        return None
    made = json.loads(attrs["config"])
    values = made.get("values", {})
    free = (*NOT_DEPENDED_ON, *(("n_boot",) if isinstance(attrs.get("n_boot"), str) else ()))
    shaped = {key: (value, cfg[key]) for key, value in values.items() if key not in free and key in cfg}
    shaped[f"ensembles.{ensemble}"] = (values.get("ensembles", {}).get(ensemble), cfg["ensembles"].get(ensemble))
    for key, (value, want) in shaped.items():
        if value is not None and value != want:
            raise InputError(path, key, f"the predictions were made with {key}={value!r}, the settings say "
                             f"{want!r}; the analysis cannot change it: analyse with the prediction's "
                             f"settings (preset {made.get('preset')!r}, overrides {made.get('overrides')}) or "
                             f"run the prediction again with these settings")
    return made


def load_predictions(cfg, mock: str, sigma_gev: float) -> PredictionSet:
    """Read every ensemble's prediction file for (mock, σ); a missing file is reported, not fatal.

    Checks that the files agree on energies, truth, sample kind, closure level and the input samples
    themselves: the systematic differences of method §8 are only meaningful on the same samples.
    """
    predictions, files, made_with, input_checks = {}, {}, {}, {}
    ref = None   # (path, energies, truth, kind, samples, closure level) of the first file read
    for ens in cfg["ensembles"]:
        path = cfg.prediction_file(mock, ens, sigma_gev)
        files[ens] = str(path)
        if not path.is_file():
            predictions[ens] = made_with[ens] = input_checks[ens] = None
            print(f"  missing: {path} (ensemble {ens}, sigma {sigma_gev})")
            continue
        with open_h5(path, f"prediction file of {mock}, ensemble {ens}, σ = {sigma_gev}") as h5:
            P = read_dataset(h5, "predictions", shape=(None, None, None))
            energies = read_dataset(h5, "energy_grid_smeared", shape=(P.shape[2],))
            samples = read_dataset(h5, "input_samples", shape=(P.shape[0], None))
            truth = (read_dataset(h5, "true_smeared_rho", shape=(P.shape[2],))
                     if "true_smeared_rho" in h5 else None)
            kind = str(h5.attrs.get("sample_kind", "bootstrap"))
            origin = str(h5.attrs.get("sample_origin", NOT_RECORDED))
            n_boot = h5.attrs.get("n_boot", NOT_RECORDED)
            n_boot = n_boot if isinstance(n_boot, str) else int(n_boot)
            level = int(h5.attrs["closure_level"]) if "closure_level" in h5.attrs else None
            made_with[ens] = check_made_with(cfg, path, h5.attrs, ens)
            input_checks[ens] = json.loads(h5.attrs["input_check"]) if "input_check" in h5.attrs else None
        if truth is not None and level is None:
            raise InputError(path, "closure_level", "missing: a mock's prediction file must say how the "
                             "mock was measured (made by an older version? rerun the prediction)")
        if ref is None:
            ref = (path, energies, truth, kind, samples, level, origin, n_boot)
        else:
            checks = [("energy_grid_smeared", np.array_equal(energies, ref[1])),
                      ("true_smeared_rho", (truth is None) == (ref[2] is None)
                       and (truth is None or np.array_equal(truth, ref[2]))),
                      ("sample_kind", kind == ref[3]), ("closure_level", level == ref[5]),
                      ("sample_origin", origin == ref[6]), ("n_boot", n_boot == ref[7]),
                      ("input_samples", samples.shape == ref[4].shape and np.array_equal(samples, ref[4]))]
            for key, same in checks:
                if not same:
                    raise InputError(path, key, f"differs from {ref[0]}; every ensemble must predict the "
                                     "same input samples (rerun the prediction for all ensembles together)")
        predictions[ens] = P
    if ref is None:
        raise InputError(cfg.prediction_file(mock, REFERENCE, sigma_gev), None,
                         f"no prediction file for {mock} at σ = {sigma_gev}; run the prediction first")
    return PredictionSet(mock, sigma_gev, predictions, ref[1], ref[2], ref[3], files, ref[4], ref[5], made_with,
                         ref[6], ref[7], input_checks)


def load_interval_predictions(cfg, s: PredictionSet):
    """(q_lo, q_50, q_hi), each [N, N_r, N_E], of the interval networks' prediction file (run
    INTERVAL_RUN) of the input and σ of ``s``, checked to have predicted the same samples; None
    (with a note) when there is no such file."""
    path = cfg.prediction_file(s.mock, INTERVAL_RUN, s.sigma_gev)
    if not path.is_file():
        print(f"  missing: {path} (the interval networks' predictions, sigma {s.sigma_gev})")
        return None
    with open_h5(path, f"interval networks' prediction file of {s.mock}, σ = {s.sigma_gev}") as h5:
        P = read_dataset(h5, "predictions", shape=(len(s.samples), None, 3 * len(s.energies)))
        samples = read_dataset(h5, "input_samples", shape=s.samples.shape)
        check_made_with(cfg, path, h5.attrs, INTERVAL_RUN)
    if not np.array_equal(samples, s.samples):
        raise InputError(path, "input_samples", f"differs from {s.files[REFERENCE]}; the interval networks "
                         "must predict the ensembles' samples (rerun the prediction)")
    s.files[INTERVAL_RUN] = str(path)
    return split_quantiles(P)

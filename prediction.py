"""Stage 3: every replica of every ensemble predicts the same input samples (SPEC §8, §10).

The inputs are N samples of a correlator on the preset's time slices:
- a mock (SPEC §8-9): measured once, C̄ = C + s L z₀, and N_boot bootstrap samples drawn from
  N(C̄, s²Σ_latt) with the noise of SPEC §4 (s = C(t_min)/C_latt(t_min)): a level-1 closure test
  (closure.closure_samples; ``closure_level`` = 0 draws around the exact C instead, a diagnostic).
  Seeded by ``rng_for(cfg, "measurement" / "bootstrap", mock index, closure_repetition)``;
- the user's data (``read_user_samples``): their own bootstrap or jackknife samples, or a mean and
  covariance from which N_boot samples are drawn the same way.
For each σ and ensemble the replicas' checkpoints are loaded together (``checkpoints.
load_replicas``, which checks their geometry against the preset), the samples are standardised
with the checkpoints' own μ, γ (SPEC §5; the replicas of an ensemble share them, which
load_replicas verifies) and all replicas predict all samples in one batched pass
(``predict_replicas``).  One HDF5 file per (ensemble, σ), at cfg.prediction_file(...):

    predictions [N, N_r, N_E] (float32, the networks' precision), energy_grid_smeared [N_E],
    true_smeared_rho [N_E] (mocks only), input_samples [N, n_t], replicas [N_r] (their indices),
    clean_correlator [n_t] and measured_correlator [n_t] (C̄; mocks only); attrs: provenance,
    sample_kind, mock, ensemble, sigma_gev, arch, noise (the replicas' noise mode, from their
    checkpoints), checkpoints, missing_checkpoints, checkpoint_provenance, input_source,
    closure_level (mocks only: 1, or 0 for the diagnostic).

Missing checkpoints are reported by name; whatever exists is still predicted.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field

import h5py
import numpy as np
from tqdm import tqdm

from budget import SAMPLE_KINDS
from closure import closure_samples, level_label
from config import add_common_args, config_from_args
from checkpoints import load_replicas
from pytorch_models_t32 import predict_replicas
from io_utils import InputError, atomic_output, open_h5, provenance, read_dataset, write_attrs
from devices import configure_threads, select_device
from mocks import MOCKS, make_mock
from noise_files import covariance_cholesky, load_noise_file, select_slices
from sigma_model_utils import KERNELS, noise_scale, rng_for, standardise


@dataclass
class InputSamples:
    """The samples every network predicts, and what is known about them."""
    name: str                      # the {mock} of the file names: O3, delta_tanh or the user's name
    samples: np.ndarray            # [N, n_t] float64 on the preset's slices cfg.t
    kind: str                      # "bootstrap" or "jackknife" (budget.sample_std)
    truth: dict | None = None      # σ_gev -> exact ρ_σ(E_k) [N_E] (mocks only)
    clean: np.ndarray | None = None  # the mock's clean correlator [n_t]
    source: dict = field(default_factory=dict)   # how they were made (recorded in every file)
    measured: np.ndarray | None = None   # the mock's measurement C̄ [n_t] (closure.py)
    closure_level: int | None = None     # the mock's closure level (closure.py); None for data


# --- inputs --------------------------------------------------------------------------------------
def mock_inputs(cfg, name: str) -> InputSamples:
    """A mock measured once and its N_boot bootstrap samples, at the preset's closure level
    (SPEC §8; closure.closure_samples), with the noise file's noise."""
    if name not in MOCKS:
        raise ValueError(f"unknown mock {name!r}; expected one of {MOCKS}")
    mock = make_mock(name, cfg)
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    keys = (MOCKS.index(name), int(cfg["closure_repetition"]))
    level = int(cfg["closure_level"])
    samples, measured = closure_samples(mock.correlator, noise, level, rng_for(cfg, "measurement", *keys),
                                        rng_for(cfg, "bootstrap", *keys), int(cfg["n_boot"]))
    scale = float(noise_scale(mock.correlator, noise))
    return InputSamples(name, samples, "bootstrap", mock.truth, mock.correlator,
                        {"input": f"mock {name}", "mock_parameters": json.dumps(mock.parameters),
                         "noise_file": noise.path, "noise_source": noise.source, "noise_scale_s": scale,
                         "n_boot": int(cfg["n_boot"]), "closure": level_label(level),
                         "rng": f"rng_for(seed, 'measurement' and 'bootstrap', {keys[0]}, {keys[1]})"},
                        measured=measured, closure_level=level)


def _text(value) -> str:
    """An HDF5 string attribute (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def read_user_samples(path, cfg, name: str, kind: str | None = None, kernel: str | None = None,
                      T: int | None = None) -> InputSamples:
    """The user's correlator (HDF5), in the training geometry.

    Layout: ``t`` [n] (time slices; must include the preset's input slices), and either
    ``samples`` [N, n] (bootstrap or jackknife samples: attribute ``sample_kind`` or ``kind``) or
    ``mean`` [n] + ``cov`` [n, n] (the covariance of the mean; N_boot samples of N(mean, cov) are
    drawn, seeded).  Attributes ``kernel`` and ``T`` (or the arguments) must match the preset's.
    """
    with open_h5(path, "user correlator (t, and samples or mean + cov)") as h5:
        if "t" not in h5:
            raise InputError(path, "t", "missing; expected the time slices [n] of the correlator")
        t_file = read_dataset(h5, "t", shape=(None,))
        n = len(t_file)
        file_kernel = h5.attrs.get("kernel")
        file_T = h5.attrs.get("T")
        file_kind = h5.attrs.get("sample_kind")
        if "samples" in h5:
            data = read_dataset(h5, "samples", shape=(None, n))
            layout = "samples"
        elif "mean" in h5 and "cov" in h5:
            mean = read_dataset(h5, "mean", shape=(n,))
            cov = read_dataset(h5, "cov", shape=(n, n))
            layout = "mean+cov"
        else:
            raise InputError(path, "samples", f"missing; expected 'samples' [N, {n}] or 'mean' [{n}] and "
                             f"'cov' [{n}, {n}] (the file has {sorted(h5.keys())})")
    for key, given, stated, want, kind_of in (("kernel", kernel, file_kernel, cfg["kernel"], _text),
                                              ("T", T, file_T, cfg["T"], int)):
        given, stated = (None if v is None else kind_of(v) for v in (given, stated))
        value = given if given is not None else stated
        if value is None:
            raise InputError(path, key, f"not stated; give the attribute '{key}' (or --{key.lower()}) so the "
                             f"geometry can be checked (the networks were trained with {key} = {want})")
        if given is not None and stated is not None and given != stated:
            raise InputError(path, key, f"the file says {stated!r} but --{key.lower()} says {given!r}")
        if value != want:
            raise InputError(path, key, f"{value!r}, but the networks were trained with {key} = {want!r} "
                             f"(kernels: {KERNELS}); a geometry mismatch")
    pick = select_slices(path, t_file, cfg, needed="")    # the networks' input slices
    if len(t_file) != cfg.n_t:
        print(f"note: {path}: using slices t={cfg['t_min']}..{cfg['t_max']} of the file's "
              f"{int(t_file[0])}..{int(t_file[-1])}")
    source = {"input": f"user file {path}", "layout": layout}
    if layout == "samples":
        samples = data[:, pick]
        kind = kind or (None if file_kind is None else _text(file_kind))
        if kind not in SAMPLE_KINDS:
            raise InputError(path, "sample_kind", f"{kind!r}; say whether the samples are {SAMPLE_KINDS} "
                             "(attribute 'sample_kind' or --kind)")
        if len(samples) < 2:
            raise InputError(path, "samples", f"{len(samples)} sample(s); expected at least 2")
    else:
        if kind == "jackknife":
            raise InputError(path, "mean", "a mean and covariance give bootstrap-like draws, "
                             "not jackknife samples")
        mean, cov = mean[pick], cov[np.ix_(pick, pick)]
        chol = covariance_cholesky(cov, path)
        z = rng_for(cfg, f"user-samples:{name}").standard_normal((int(cfg["n_boot"]), cfg.n_t))
        samples = mean + z @ chol.T
        kind = "bootstrap"
        source.update(n_boot=int(cfg["n_boot"]), rng=f"rng_for(seed, 'user-samples:{name}')")
    return InputSamples(name, np.ascontiguousarray(samples, dtype=np.float64), kind, source=source)


# --- prediction ----------------------------------------------------------------------------------
def find_checkpoints(cfg, sigma_gev: float, ensemble: str):
    """(present [(replica, path)], missing [path]) of one ensemble and σ."""
    present, missing = [], []
    for r in range(cfg["n_replicas"]):
        path = cfg.checkpoint(sigma_gev, ensemble, r)
        (present.append((r, path)) if path.is_file() else missing.append(path))
    return present, missing


def predict_ensemble(cfg, inputs: InputSamples, sigma_gev: float, ensemble: str, present, device):
    """All replicas of one ensemble on all samples: ([N, N_r, N_E] float32, metas)."""
    models, metas = load_replicas([p for _, p in present], map_location=device, cfg=cfg)
    for (_, path), meta in zip(present, metas):
        if float(meta["sigma_gev"]) != float(sigma_gev) or meta["ensemble"] != ensemble:
            raise InputError(path, "sigma_gev", f"a checkpoint of {meta['ensemble']} at "
                             f"σ = {meta['sigma_gev']}, "
                             f"found where {ensemble} at σ = {sigma_gev} belongs")
    x = standardise(inputs.samples, metas[0]["mu"], metas[0]["gamma"])
    return predict_replicas(models, x).cpu().numpy(), metas


def write_prediction_file(cfg, inputs: InputSamples, sigma_gev, ensemble, P, present, missing, metas):
    path = cfg.prediction_file(inputs.name, ensemble, sigma_gev)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("predictions", data=P.astype(np.float32))
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
                sample_kind=inputs.kind, arch=metas[0]["arch"],
                noise=str(metas[0].get("noise", "unknown")),     # the replicas' noise mode (SPEC §7)
                checkpoints=json.dumps([str(p) for _, p in present]),
                missing_checkpoints=json.dumps([str(p) for p in missing]),
                checkpoint_provenance=json.dumps([m["provenance"] for m in metas]),
                input_source=json.dumps(inputs.source), **level))
    return path


def predict_all(cfg, inputs: InputSamples, device=None) -> dict:
    """Predict ``inputs`` with every replica of every ensemble for every σ; write one file each.

    Returns {"written": [paths], "missing": [checkpoint paths], "skipped": [(ensemble, σ)]}.
    """
    device = device or select_device()
    if inputs.samples.ndim != 2 or inputs.samples.shape[1] != cfg.n_t:
        raise ValueError(f"input samples of shape {list(inputs.samples.shape)}; expected [N, {cfg.n_t}]")
    report = {"written": [], "missing": [], "skipped": []}
    groups = [(s, ens) for s in cfg["sigmas_gev"] for ens in cfg["ensembles"]]
    for sigma_gev, ensemble in tqdm(groups, desc=f"predict {inputs.name}", unit="ensemble"):
        present, missing = find_checkpoints(cfg, sigma_gev, ensemble)
        report["missing"] += missing
        for path in missing:
            tqdm.write(f"missing checkpoint: {path}")
        if not present:
            report["skipped"].append((ensemble, sigma_gev))
            tqdm.write(f"no replica of {ensemble} at sigma = {sigma_gev}: nothing predicted for it")
            continue
        P, metas = predict_ensemble(cfg, inputs, sigma_gev, ensemble, present, device)
        report["written"].append(write_prediction_file(cfg, inputs, sigma_gev, ensemble, P, present,
                                                       missing, metas))
    return report


def print_report(report: dict) -> int:
    """Print what was written and what is missing; exit status 1 if nothing could be predicted."""
    for path in report["written"]:
        print(f"wrote {path}")
    if report["missing"]:
        print(f"WARNING: {len(report['missing'])} checkpoint(s) missing (listed above); "
              f"ensembles with no replica at all: {report['skipped'] or 'none'}")
    if not report["written"]:
        print("ERROR: no checkpoint found, nothing predicted (train the audience first)")
        return 1
    return 0


def mock_main(mock: str, description: str, argv=None) -> int:
    """The command line of predict_on_O3_mock_sigma.py and predict_on_delta_tanh.py.

    Exit status: 0 (something was predicted), 1 (no checkpoint at all), 2 (bad input).
    """
    parser = add_common_args(argparse.ArgumentParser(description=description))
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        configure_threads()
        report = predict_all(cfg, mock_inputs(cfg, mock), args.device)
    except ValueError as err:          # ConfigError and InputError: one clear message
        print(f"error: {err}", file=sys.stderr)
        return 2
    return print_report(report)

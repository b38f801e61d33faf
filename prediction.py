"""Stage 3: every replica of every ensemble predicts the same input samples (SPEC §8, §10).

The inputs are N samples of a correlator on the preset's time slices:
- a mock (SPEC §8-9): measured once, C̄ = C + s L z₀, and N_boot bootstrap samples drawn from
  N(C̄, s²Σ_latt) with the noise of SPEC §4 (s = C(t_min)/C_latt(t_min)): a level-1 closure test
  (closure.closure_samples; ``closure_level`` = 0 draws around the exact C instead, a diagnostic).
  Seeded by ``rng_for(cfg, "measurement" / "bootstrap", mock index, closure_repetition)``;
- the user's data (``read_user_samples``, any format of correlator_files.py): per-configuration
  data resampled here (bootstrap, seeded, or jackknife, after optional folding and binning),
  their own bootstrap or jackknife samples, or a mean and covariance from which N_boot samples
  are drawn.
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

Missing checkpoints are reported by name; whatever exists is still predicted.  A file whose
``fingerprint`` attribute says it was made from the same checkpoints (their SHA-256), the same
input samples and the same settings is up to date: it is kept and reported (``force`` redoes it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field

import h5py
import numpy as np
from tqdm import tqdm

from cli import main_guard
from closure import closure_samples, level_label
from config import add_common_args, config_from_args
from checkpoints import load_replicas
from pytorch_models_t32 import predict_replicas
from roles import SAMPLE_KINDS
from correlator_files import bin_samples, describe_slices, fold_correlator, read_correlator, resample
from io_utils import (InputError, atomic_output, check_writable, file_sha256, fingerprint, provenance,
                      recorded_fingerprint, write_attrs)
from mocks import MOCKS, make_mock
from devices import configure_threads, select_device
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
                      fold: bool = False, bin_size: int = 1, resampling: str = "bootstrap") -> InputSamples:
    """The user's correlator, in any format of correlator_files.py, in the training geometry.

    What the rows are (``kind``, else what the file says: HDF5 attribute ``sample_kind``; every
    other format holds per-configuration data):
    - configurations: optionally folded, binned in bins of ``bin_size``, then resampled by the tool:
      N_boot bootstrap means (configurations drawn with replacement, the stream
      ``rng_for(seed, 'user-bootstrap:NAME')``) or the N_bins jackknife means (``resampling``);
    - bootstrap or jackknife samples: used as they are (optionally folded);
    - a mean + the covariance of the mean (HDF5 ``mean``, ``cov``): N_boot draws of N(mean, cov),
      seeded by ``rng_for(seed, 'user-samples:NAME')``.
    The file's time slices (HDF5 ``t``; else t = 0, 1, ...) must include the networks' input
    slices, and the kernel and T (stated by the file or given) must be the preset's.
    """
    corr = read_correlator(path, fmt, tag)
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
    if corr.values is None:
        if kind == "jackknife":
            raise InputError(path, "mean", "a mean and covariance give bootstrap-like draws, not jackknife samples")
        mean, cov = corr.mean[pick], corr.cov[np.ix_(pick, pick)]
        chol = covariance_cholesky(cov, path)
        z = rng_for(cfg, f"user-samples:{name}").standard_normal((int(cfg["n_boot"]), cfg.n_t))
        samples = mean + z @ chol.T
        kind = "bootstrap"
        source.update(layout="mean+cov", n_boot=int(cfg["n_boot"]), seed=int(cfg["seed"]),
                      rng=f"rng_for(seed, 'user-samples:{name}')")
    elif kind == "configurations":
        bins = bin_samples(corr.values[:, pick], bin_size)
        if len(bins) < 2:
            raise InputError(path, corr.key, f"{len(corr.values)} configuration(s) make {len(bins)} bin(s) of "
                             f"{bin_size}; expected at least 2 to resample")
        samples = resample(bins, resampling, int(cfg["n_boot"]), rng_for(cfg, f"user-bootstrap:{name}"))
        source.update(layout="configurations", n_configurations=len(corr.values), bin_size=bin_size,
                      n_bins=len(bins), resampling=resampling)
        if resampling == "bootstrap":
            source.update(n_boot=int(cfg["n_boot"]), seed=int(cfg["seed"]), rng=f"rng_for(seed, 'user-bootstrap:{name}')")
        kind = resampling
    elif kind in SAMPLE_KINDS:
        samples = corr.values[:, pick]
        if len(samples) < 2:
            raise InputError(path, corr.key, f"{len(samples)} sample(s); expected at least 2")
        source.update(layout="samples")
    else:
        raise InputError(path, "sample_kind", f"{kind!r}; say whether the rows are configurations, bootstrap "
                         "or jackknife samples (attribute 'sample_kind' or --kind)")
    return InputSamples(name, np.ascontiguousarray(samples, dtype=np.float64), kind, source=source)


def describe_inputs(inputs: InputSamples) -> str:
    """One line: what the networks predict and how it was made from the user's file."""
    s = inputs.source
    made = {"configurations": f"{s.get('n_configurations')} configurations -> {s.get('n_bins')} bins of "
                              f"{s.get('bin_size')} -> ", "mean+cov": "mean and covariance -> "}.get(s.get("layout"), "")
    seeded = f" (seed {s['seed']}, stream {s['rng']})" if "rng" in s else ""
    return (f"{s.get('file')} ({s.get('format')}{', folded' if s.get('folded') else ''}): {made}"
            f"{len(inputs.samples)} {inputs.kind} samples{seeded}")


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
    with np.errstate(over="ignore", invalid="ignore"):      # checked just below, with a message
        x = standardise(inputs.samples, metas[0]["mu"], metas[0]["gamma"])
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        i, k = bad[0]
        raise InputError(inputs.source.get("file", inputs.name), inputs.source.get("key") or "samples",
                         f"sample {i}, t = {int(cfg.t[k])}: {inputs.samples[i, k]:.3g} is {x[i, k]} once "
                         f"standardised with the networks' μ, γ in float32; expected a correlator of the "
                         "training's scale (overflowing or non-finite values)")
    return predict_replicas(models, x).cpu().numpy(), metas


def prediction_fingerprint(cfg, inputs: InputSamples, present, missing) -> str:
    """What a prediction file is made of: the checkpoints' contents, the samples, the settings."""
    return fingerprint({"checkpoints": [(r, file_sha256(p)) for r, p in present],
                        "missing": [str(p) for p in missing],
                        "samples": hashlib.sha256(np.ascontiguousarray(inputs.samples).tobytes()).hexdigest(),
                        "kind": inputs.kind, "source": inputs.source, "values": cfg.values_json()})


def write_prediction_file(cfg, inputs: InputSamples, sigma_gev, ensemble, P, present, missing, metas,
                          made_of: str):
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
                input_source=json.dumps(inputs.source), fingerprint=made_of, **level))
    return path


def predict_all(cfg, inputs: InputSamples, device=None, force: bool = False) -> dict:
    """Predict ``inputs`` with every replica of every ensemble for every σ; write one file each
    (or keep it when it is up to date, unless ``force``).

    Returns {"written": [paths], "up to date": [paths], "missing": [checkpoint paths],
    "skipped": [(ensemble, σ)]}.
    """
    device = select_device(device, cfg["tf32"])
    if inputs.samples.ndim != 2 or inputs.samples.shape[1] != cfg.n_t:
        raise ValueError(f"input samples of shape {list(inputs.samples.shape)}; expected [N, {cfg.n_t}]")
    report = {"written": [], "up to date": [], "missing": [], "skipped": []}
    groups = [(s, ens) for s in cfg["sigmas_gev"] for ens in cfg["ensembles"]]
    for directory in sorted({cfg.prediction_file(inputs.name, e, s).parent for s, e in groups}):
        check_writable(directory, "prediction files")
    for sigma_gev, ensemble in tqdm(groups, desc=f"predict {inputs.name}", unit="ensemble"):
        present, missing = find_checkpoints(cfg, sigma_gev, ensemble)
        report["missing"] += missing
        for path in missing:
            tqdm.write(f"missing checkpoint: {path}")
        if not present:
            report["skipped"].append((ensemble, sigma_gev))
            tqdm.write(f"no replica of {ensemble} at sigma = {sigma_gev}: nothing predicted for it")
            continue
        made_of = prediction_fingerprint(cfg, inputs, present, missing)
        path = cfg.prediction_file(inputs.name, ensemble, sigma_gev)
        if not force and recorded_fingerprint(path) == made_of:
            report["up to date"].append(path)
            continue
        P, metas = predict_ensemble(cfg, inputs, sigma_gev, ensemble, present, device)
        report["written"].append(write_prediction_file(cfg, inputs, sigma_gev, ensemble, P, present,
                                                       missing, metas, made_of))
    return report


def print_report(report: dict) -> int:
    """Print what was written and what is missing; exit status 1 if nothing could be predicted."""
    for path in report["written"]:
        print(f"wrote {path}")
    for path in report["up to date"]:
        print(f"up to date: {path} (same checkpoints, input samples and settings; --force redoes it)")
    if report["missing"]:
        print(f"WARNING: {len(report['missing'])} checkpoint(s) missing (listed above); "
              f"ensembles with no replica at all: {report['skipped'] or 'none'}")
    if not report["written"] and not report["up to date"]:
        print("ERROR: no checkpoint found, nothing predicted (train the audience first)")
        return 1
    return 0


@main_guard
def mock_main(mock: str, description: str, argv=None) -> int:
    """The command line of predict_on_O3_mock_sigma.py and predict_on_delta_tanh.py.

    Exit status: 0 (something was predicted), 1 (no checkpoint at all), 2 (bad input).
    """
    parser = add_common_args(argparse.ArgumentParser(description=description))
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    add_force_arg(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    configure_threads()
    return print_report(predict_all(cfg, mock_inputs(cfg, mock), args.device, args.force))


def add_force_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="redo prediction files that are up to date (same checkpoints, samples, settings)")

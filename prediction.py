"""Stage 3: every replica of every ensemble predicts the same input samples (method §8, §10).

The inputs are N samples of a correlator on the preset's time slices:
- a mock (method §8-9): measured once, C̄ = C + s L z₀, and N_boot bootstrap samples drawn from
  N(C̄, s²Σ_latt) with the noise of method §4 (s = C(t_min)/C_latt(t_min)): a level-1 closure test
  (closure.closure_samples; ``closure_level`` = 0 draws around the exact C instead, a diagnostic).
  Seeded by ``rng_for(cfg, "measurement" / "bootstrap", mock index, closure_repetition)``;
- the user's data (user_correlators.read_user_samples, any format of correlator_files.py):
  per-configuration data resampled (bootstrap, seeded, or jackknife, after optional folding and
  binning), their own bootstrap or jackknife samples, or a mean and covariance from which N_boot
  samples are drawn.
How far the input lies from what the networks were trained on is checked for each ensemble
(``input_check``: a central value below zero, which no non-negative density gives, and its
distance from the training correlators in units of their spread); each criterion met is a WARNING
at the end of the prediction, and the check is recorded in every prediction file.
For each σ and ensemble the replicas' checkpoints are loaded together (``checkpoints.
load_replicas``, which checks their geometry against the preset), the samples are standardised
with the checkpoints' own μ, γ (method §5; the replicas of an ensemble share them, which
load_replicas verifies) and all replicas predict all samples in one batched pass
(``predict_replicas``).  One prediction file per (ensemble, σ) (prediction_files.py, its format).

One process predicting several inputs (predict_on_user_data.py with several correlators) finds,
hashes and loads each checkpoint once (``Audience``) and predicts each input as a single run would.

Missing checkpoints are reported by name; whatever exists is still predicted.  A file made from
the same checkpoints (their SHA-256), the same input samples and the same settings is up to date:
it is kept and reported (``force`` redoes it).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from tqdm import tqdm

from budget import sample_std
from checkpoints import load_replicas
from cli import add_wait_lock_arg, main_guard
from closure import closure_samples, level_label
from config import add_common_args, config_from_args
from devices import configure_threads, select_device
from io_utils import InputError, check_writable, file_sha256, remove_stale_temporaries, task_lock
from mocks import MOCKS, make_mock
from noise_files import load_noise_file
from prediction_files import InputSamples, prediction_fingerprint, up_to_date, write_prediction_file
from pytorch_models_t32 import predict_replicas
from sigma_model_utils import noise_scale, rng_for, standardise
from tasks import predicted_runs


# --- inputs --------------------------------------------------------------------------------------
def mock_inputs(cfg, name: str) -> InputSamples:
    """A mock measured once and its N_boot bootstrap samples, at the preset's closure level
    (method §8; closure.closure_samples), with the noise file's noise."""
    if name not in MOCKS:
        raise ValueError(f"unknown mock {name!r}; expected one of {MOCKS}")
    mock = make_mock(name, cfg)
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    keys = (MOCKS.index(name), int(cfg["closure_repetition"]))
    level = int(cfg["closure_level"])
    samples, measured = closure_samples(mock.correlator, noise, level, rng_for(cfg, "measurement", *keys),
                                        rng_for(cfg, "bootstrap", *keys), int(cfg["n_boot"]))
    scale = float(noise_scale(mock.correlator, noise))
    return InputSamples(name, samples, "bootstrap", "closure draws of the mock", int(cfg["n_boot"]),
                        mock.truth, mock.correlator,
                        {"input": f"mock {name}", "mock_parameters": json.dumps(mock.parameters),
                         "noise_file": noise.path, "noise_source": noise.source, "noise_scale_s": scale,
                         "n_boot": int(cfg["n_boot"]), "closure": level_label(level),
                         "rng": f"rng_for(seed, 'measurement' and 'bootstrap', {keys[0]}, {keys[1]})"},
                        measured=measured, closure_level=level)


# --- how far the input lies from the training's (method §5) ----------------------------------------
NEGATIVE_ERRORS = 5.0      # C̄(t) below zero by more errors than this: no density ρ ≥ 0 gives it
FAR_FROM_TRAINING = 10.0   # max_t |C̄(t) - μ(t)| / γ(t) beyond this: far from the training correlators


def input_check(inputs: InputSamples, meta: dict, t) -> dict:
    """How the input's central value C̄ (the mean of its samples, with errors δC by
    budget.sample_std) lies against the training of one ensemble (``meta``: a checkpoint's μ, γ, method §5).

    - ``negative_t``: the slices where C̄(t) < -NEGATIVE_ERRORS δC(t).  Every kernel b(t, ω) of
      sigma_model_utils.KERNELS is ≥ 0, so every density ρ ≥ 0 gives C(t) > 0: no non-negative
      density has this correlator.  (The Chebyshev space holds densities of either sign, so its
      networks still answer; P and the prior space hold only ρ ≥ 0.)
    - ``distance``: max_t |C̄(t) - μ(t)| / γ(t).  μ and γ are the mean and standard deviation of
      the training file's clean correlators at each t, so by Chebyshev's inequality at most 1/d²
      of them lie as far at a slice; beyond FAR_FROM_TRAINING (at most 1 %) the input is flagged.
    ``warnings``: one line for each criterion met (none: within both).  Recorded as JSON in the
    prediction files and the budget files (``input_check``)."""
    t = np.asarray(t)
    centre = inputs.samples.mean(axis=0)
    error = np.nan_to_num(sample_std(inputs.samples, axis=0, kind=inputs.kind))   # one sample: 0
    negative = [int(x) for x in t[centre < -NEGATIVE_ERRORS * error]]
    z = np.abs((centre - meta["mu"]) / meta["gamma"])
    k = int(np.argmax(z))
    check = {"against": f"the clean training correlators of {meta['ensemble']} (mean mu, std gamma of its checkpoint)",
             "distance": float(z[k]), "distance_t": int(t[k]), "distance_limit": FAR_FROM_TRAINING,
             "negative_t": negative, "negative_errors": NEGATIVE_ERRORS, "warnings": []}
    if negative:
        check["warnings"].append(
            f"{inputs.name}: its central value is below zero by more than {NEGATIVE_ERRORS:g} errors at t = "
            f"{_slices(negative)}: no non-negative spectral density gives that correlator (the kernel is "
            "non-negative); check its sign: the result is not the density of a diagonal correlator")
    if check["distance"] > FAR_FROM_TRAINING:
        check["warnings"].append(
            f"{inputs.name}: its central value lies {check['distance']:.3g} standard deviations of "
            f"{meta['ensemble']}'s training correlators from their mean at t = {check['distance_t']} "
            f"(|C - mu| / gamma > {FAR_FROM_TRAINING:g}: at most 1 % of them lie as far), outside what the networks "
            "were trained on")
    return check


def _slices(t: list[int]) -> str:
    return ", ".join(map(str, t)) if len(t) <= 6 else f"{t[0]}, {t[1]}, ..., {t[-1]} ({len(t)} slices)"


# --- prediction ----------------------------------------------------------------------------------
def find_checkpoints(cfg, sigma_gev: float, ensemble: str):
    """(present [(replica, path)], missing [path]) of one ensemble and σ."""
    present, missing = [], []
    for r in range(cfg["n_replicas"]):
        path = cfg.checkpoint(sigma_gev, ensemble, r)
        (present.append((r, path)) if path.is_file() else missing.append(path))
    return present, missing


def load_ensemble(cfg, sigma_gev: float, ensemble: str, present, device):
    """(models, metas) of the replicas ``present`` [(replica, path)] of one ensemble (or of the
    interval networks, INTERVAL_RUN), checked to be that run's at σ."""
    models, metas = load_replicas([p for _, p in present], map_location=device, cfg=cfg)
    for (_, path), meta in zip(present, metas):
        if float(meta["sigma_gev"]) != float(sigma_gev) or meta["ensemble"] != ensemble:
            raise InputError(path, "sigma_gev", f"a checkpoint of {meta['ensemble']} at "
                             f"σ = {meta['sigma_gev']}, "
                             f"found where {ensemble} at σ = {sigma_gev} belongs")
    return models, metas


def predict_ensemble(cfg, inputs: InputSamples, sigma_gev: float, ensemble: str, present, device):
    """All replicas of one ensemble on all samples: ([N, N_r, N_out] float32, metas)."""
    models, metas = load_ensemble(cfg, sigma_gev, ensemble, present, device)
    return predict_loaded(cfg, inputs, models, metas), metas


def predict_loaded(cfg, inputs: InputSamples, models, metas) -> np.ndarray:
    """Loaded replicas (load_ensemble) on all samples, standardised with their μ, γ: [N, N_r, N_out]."""
    with np.errstate(over="ignore", invalid="ignore"):      # checked just below, with a message
        x = standardise(inputs.samples, metas[0]["mu"], metas[0]["gamma"])
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        i, k = bad[0]
        raise InputError(inputs.source.get("file", inputs.name), inputs.source.get("key") or "samples",
                         f"sample {i}, t = {int(cfg.t[k])}: {inputs.samples[i, k]:.3g} is {x[i, k]} once "
                         f"standardised with the networks' μ, γ in float32; expected a correlator of the "
                         "training's scale (overflowing or non-finite values)")
    return predict_replicas(models, x).cpu().numpy()


class Audience:
    """The checkpoints of every (σ, ensemble), found, hashed and loaded on first use and kept for the
    next input: what ``predict_all`` reads, once per process."""

    def __init__(self, cfg, device=None):
        self.cfg, self.device = cfg, select_device(device, cfg["tf32"])
        self._found, self._loaded = {}, {}

    def checkpoints(self, sigma_gev: float, ensemble: str):
        """(present [(replica, path)], missing [path], digests [(replica, SHA-256)]) of one ensemble and σ."""
        if (sigma_gev, ensemble) not in self._found:
            present, missing = find_checkpoints(self.cfg, sigma_gev, ensemble)
            self._found[sigma_gev, ensemble] = present, missing, [(r, file_sha256(p)) for r, p in present]
        return self._found[sigma_gev, ensemble]

    def networks(self, sigma_gev: float, ensemble: str):
        """(models, metas) of the replicas present (load_ensemble)."""
        if (sigma_gev, ensemble) not in self._loaded:
            present = self.checkpoints(sigma_gev, ensemble)[0]
            self._loaded[sigma_gev, ensemble] = load_ensemble(self.cfg, sigma_gev, ensemble, present, self.device)
        return self._loaded[sigma_gev, ensemble]


def predict_all(cfg, inputs: InputSamples, device=None, force: bool = False, wait_lock: bool = False,
                audience: Audience | None = None) -> dict:
    """Predict ``inputs`` with every replica of every ensemble for every σ; write one file each
    (or keep it when it is up to date, unless ``force``).  ``audience``: the checkpoints already
    read for earlier inputs (else read here, on ``device``).

    One process predicts an input (cfg.prediction_lock; another stops with io_utils.TaskLocked, or
    with ``wait_lock`` waits); holding the lock it first removes the temporaries of its prediction
    files that a killed run left.

    Returns {"written": [paths], "up to date": [paths], "missing": [checkpoint paths],
    "skipped": [(ensemble, σ)], "input warnings": [the lines of input_check, each once]}.
    """
    audience = audience or Audience(cfg, device)
    if inputs.samples.ndim != 2 or inputs.samples.shape[1] != cfg.n_t:
        raise ValueError(f"input samples of shape {list(inputs.samples.shape)}; expected [N, {cfg.n_t}]")
    report = {"written": [], "up to date": [], "missing": [], "skipped": [], "input warnings": []}
    groups = [(s, ens) for s in cfg["sigmas_gev"] for ens in predicted_runs(cfg)]
    outputs = [cfg.prediction_file(inputs.name, e, s) for s, e in groups]
    for directory in sorted({path.parent for path in outputs}):
        check_writable(directory, "prediction files")
    with task_lock(cfg.prediction_lock(inputs.name), f"the prediction of {inputs.name}", wait_lock):
        stale = remove_stale_temporaries(outputs)
        if stale:
            print(f"removed {len(stale)} temporary file(s) of a killed prediction: "
                  f"{', '.join(p.name for p in stale)}")
        _predict_groups(cfg, inputs, groups, audience, force, report)
    return report


def _predict_groups(cfg, inputs: InputSamples, groups, audience: Audience, force: bool, report: dict) -> None:
    """predict_all's work, under its lock: each (σ, ensemble) of ``groups`` into ``report``."""
    for sigma_gev, ensemble in tqdm(groups, desc=f"predict {inputs.name}", unit="ensemble"):
        present, missing, digests = audience.checkpoints(sigma_gev, ensemble)
        report["missing"] += missing
        for path in missing:
            tqdm.write(f"missing checkpoint: {path}")
        if not present:
            report["skipped"].append((ensemble, sigma_gev))
            tqdm.write(f"no replica of {ensemble} at sigma = {sigma_gev}: nothing predicted for it")
            continue
        made_of = prediction_fingerprint(cfg, inputs, digests, missing)
        path = cfg.prediction_file(inputs.name, ensemble, sigma_gev)
        if not force and up_to_date(path, made_of):
            report["up to date"].append(path)
            continue
        models, metas = audience.networks(sigma_gev, ensemble)
        P = predict_loaded(cfg, inputs, models, metas)
        check = input_check(inputs, metas[0], cfg.t)
        report["input warnings"] += [w for w in check["warnings"] if w not in report["input warnings"]]
        report["written"].append(write_prediction_file(cfg, inputs, sigma_gev, ensemble, P, present,
                                                       missing, metas, made_of, check))


def print_report(report: dict) -> int:
    """Print what was written and what is missing; exit status 1 if nothing could be predicted."""
    for path in report["written"]:
        print(f"wrote {path}")
    for path in report["up to date"]:
        print(f"up to date: {path} (same checkpoints, input samples and settings; --force redoes it)")
    if report["missing"]:
        print(f"WARNING: {len(report['missing'])} checkpoint(s) missing (listed above); "
              f"ensembles with no replica at all: {report['skipped'] or 'none'}")
    for warning in report["input warnings"]:
        print(f"WARNING: {warning}")
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
    add_wait_lock_arg(parser, f"predicts {mock}")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    configure_threads()
    return print_report(predict_all(cfg, mock_inputs(cfg, mock), args.device, args.force, args.wait_lock))


def add_force_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="redo prediction files that are up to date (same checkpoints, samples, settings)")

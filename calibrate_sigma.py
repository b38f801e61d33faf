"""Stage 2b: the conformal calibration of the calibrated error, one file per σ (method, "The
calibrated error"; the formulas: calibration.py; the file: calibration_files.py).

    python calibrate_sigma.py [--preset demo] [--set KEY=VALUE] [--root DIR] [--sigma 0.44] [--force]

After training, before prediction.  For each σ of the preset (or those given with --sigma):
1. the calibration set, drawn once for all σ: N_cal (``n_cal``) densities of the calibration space
   (``calibration_space``, tasks.calibration_space; with interval networks their training space), drawn
   block by block as the training files are but from the stream CALIBRATION_STREAM, which no
   training file or early stopping uses (training_sets.check_own_stream refuses one that is),
   with their exact correlators and smeared targets (the training files' own generators);
2. each density measured once and given N_boot,cal (``n_boot_cal``) bootstrap samples around the
   measurement with the training noise (closure.closure_samples at level 1; item i's streams
   rng_for(seed, MEASUREMENT_STREAM / BOOTSTRAP_STREAM, i));
3. every replica of every ensemble of the paper's budget (and every interval network, with
   interval_networks) predicts every sample, as user data are predicted (prediction.load_ensemble /
   predict_loaded), CHUNK_ITEMS densities at a time (memory bounded by the chunk);
4. per density: ρ̄_Nmax and σ_tot from the budget of its samples (budget.error_budget) (, the width
   w and the median centre of the interval networks: means over samples and replicas); the factors
   Q of every centre (the audience centre's per bin of its feature: ``calibration_bins``), S, the
   correlations R and the coverage on the set (calibration.calibrate);
5. calibration/calibration_sigma{100σ}.h5 written atomically with the SHA-256 of every network used.
A σ whose file was made from the same networks (their SHA-256), noise file and settings is up to
date and kept (``--force`` redoes it): rerun after an interruption, only the missing σ are made.
Without interval networks the calibration is the audience centre's alone.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

import budget as bud
import calibration
from calibration_files import Calibration, calibration_networks, checkpoint_hashes, up_to_date, write_calibration
from cli import main_guard
from closure import closure_samples
from config import add_common_args, config_from_args
from devices import configure_threads, select_device
from interval_networks import load_interval_networks
from interval_outputs import QUANTILE_LEVELS, split_quantiles
from io_utils import DamagedFile, InputError, check_writable, file_sha256, fingerprint
from noise_files import load_noise_file
from prediction import find_checkpoints, load_ensemble, predict_loaded
from prediction_files import InputSamples
from roles import INTERVAL_RUN, REFERENCE
from sigma_model_utils import rng_for
from tasks import calibration_space, rewrite_remedy, unmeasured_systematics
from training_sets import GENERATION_KEYS, check_own_stream, space_samples

CALIBRATION_STREAM = "calibration-space"            # the densities of the calibration set
MEASUREMENT_STREAM = "calibration-measurement"      # each density's one measurement
BOOTSTRAP_STREAM = "calibration-bootstrap"          # its bootstrap samples
CHUNK_ITEMS = 256        # densities predicted together: CHUNK_ITEMS·N_boot,cal samples per pass
# the settings a calibration file depends on (besides the networks and the noise file's content)
CALIBRATION_KEYS = tuple(k for k in GENERATION_KEYS if k not in ("n_noise", "sigmas_gev")) + (
    "noise_file", "space", "calibration_space", "n_cal", "n_boot_cal", "calibration_bins", "interval_networks", "tf32")


@dataclass
class CalibrationSet:
    """The calibration densities: exact correlators [N_cal, n_t] and truths {σ: [N_cal, N_E]}."""
    space: str
    correlators: np.ndarray
    truths: dict


def calibration_set(cfg) -> CalibrationSet:
    """N_cal densities of the calibration space from the calibration's own stream (step 1)."""
    for stream in (CALIBRATION_STREAM, MEASUREMENT_STREAM, BOOTSTRAP_STREAM):
        check_own_stream(stream)
    space = calibration_space(cfg)
    _, correlators, truths = space_samples(cfg, cfg["ensembles"][REFERENCE]["nb"], cfg["n_cal"], space,
                                           CALIBRATION_STREAM, progress=True)
    return CalibrationSet(space, correlators, truths)


def measured_samples(cfg, correlators: np.ndarray, first: int, noise) -> np.ndarray:
    """The N_boot,cal samples [n, N_boot,cal, n_t] of items first..first+n-1, each measured once (step 2)."""
    return np.stack([closure_samples(c, noise, 1, rng_for(cfg, MEASUREMENT_STREAM, first + j),
                                     rng_for(cfg, BOOTSTRAP_STREAM, first + j), cfg["n_boot_cal"])[0]
                     for j, c in enumerate(correlators)])


def load_networks(cfg, sigma_gev: float, device) -> dict:
    """{run: (models, metas)} of every ensemble of the paper's budget and, with interval_networks, of
    the interval networks; a missing replica is an InputError (the calibration is made with the whole
    audience), an unreadable one names the training command that writes it again."""
    networks = {}
    try:
        for ensemble in calibration.calibrated_ensembles(cfg):
            present, missing = find_checkpoints(cfg, sigma_gev, ensemble)
            if missing:
                raise InputError(missing[0], None, "missing: the calibration needs every replica of every "
                                 f"ensemble (train first: {cfg.command('run_pipeline.py')})")
            networks[ensemble] = load_ensemble(cfg, sigma_gev, ensemble, present, device)
        if cfg["interval_networks"]:
            networks[INTERVAL_RUN] = load_interval_networks(cfg, sigma_gev, device)
    except DamagedFile as err:
        raise InputError(err.path, err.key, f"{err.problem}; {rewrite_remedy(cfg, err.path)}") from None
    return networks


def predict_items(cfg, networks: dict, correlators: np.ndarray, noise) -> dict:
    """Per density, from the predictions of its samples (steps 3-4): {central, total (, median, width)}
    [N_cal, N_E] and the systematics Σ_X [N_cal, N_E] under their budget names."""
    n_boot = cfg["n_boot_cal"]
    unmeasured = unmeasured_systematics(cfg)
    out = {}
    for first in tqdm(range(0, len(correlators), CHUNK_ITEMS), desc="calibration predictions", unit="chunk"):
        chunk = correlators[first:first + CHUNK_ITEMS]
        inputs = InputSamples("calibration", measured_samples(cfg, chunk, first, noise).reshape(-1, cfg.n_t),
                              "bootstrap", "closure draws of the calibration densities", n_boot)
        predicted = {run: predict_loaded(cfg, inputs, *loaded).reshape(len(chunk), n_boot, len(loaded[0]), -1)
                     for run, loaded in networks.items()}
        rows = {}
        if INTERVAL_RUN in predicted:
            q_lo, q_50, q_hi = split_quantiles(predicted.pop(INTERVAL_RUN).astype(np.float64))
            rows["width"], rows["median"] = calibration.width_and_median(q_lo, q_50, q_hi)
        budgets = [bud.error_budget({run: P[j] for run, P in predicted.items()}, unmeasured=unmeasured)
                   for j in range(len(chunk))]
        for name in ("central", "total", *bud.SYSTEMATICS):
            rows[name] = np.stack([b.component(name) for b in budgets])
        for name, values in rows.items():
            out.setdefault(name, []).append(values)
    return {name: np.concatenate(parts) for name, parts in out.items()}


def workload(cfg) -> dict:
    """What one σ's calibration computes and holds (the estimate printed before it starts): the
    samples predicted, the network evaluations, the chunks, and the bytes in memory -- the calibration
    set (correlators and the truths of every σ), one chunk's samples and predictions (float32, and the
    interval networks' again in float64, with them), and the per-density results (7 rows of N_E, twice while
    they are joined)."""
    n_cal, n_boot, n_t, n_e = cfg["n_cal"], cfg["n_boot_cal"], cfg.n_t, cfg["n_energies"]
    n_r = cfg["n_replicas"]
    interval = 1 if cfg["interval_networks"] else 0
    networks = n_r * (len(calibration.calibrated_ensembles(cfg)) + interval)
    outputs = n_r * n_e * (len(calibration.calibrated_ensembles(cfg)) + interval * len(QUANTILE_LEVELS))
    chunk = min(CHUNK_ITEMS, n_cal) * n_boot
    memory = (8 * n_cal * (n_t + n_e * len(cfg["sigmas_gev"])) + chunk * (8 * n_t + 4 * outputs + 8 * 3 * n_r * n_e)
              + 2 * 8 * 7 * n_cal * n_e)
    return {"samples": n_cal * n_boot, "networks": networks, "evaluations": n_cal * n_boot * networks,
            "chunks": -(-n_cal // CHUNK_ITEMS), "bytes": memory}


def made_of(cfg, hashes: dict) -> str:
    """What a calibration file is made of: the networks, the noise file and the settings."""
    return fingerprint({"checkpoints": hashes, "noise_sha256": file_sha256(cfg.input_path(cfg["noise_file"])),
                        "values": {key: cfg[key] for key in CALIBRATION_KEYS}})


def calibrate_sigma(cfg, sigma_gev: float, networks: dict, cal_set: CalibrationSet, noise, made: str, hashes: dict):
    """Steps 3-5 for one σ with its loaded ``networks`` (load_networks): the calibration written, and returned."""
    items = predict_items(cfg, networks, cal_set.correlators, noise)
    n_bins = calibration.bins_for(cfg["n_cal"], cfg["calibration_bins"])
    factors, S = calibration.calibrate(items, cal_set.truths[sigma_gev],
                                       calibration.available_centres(cfg["interval_networks"]), n_bins)
    cal = Calibration(factors, S, n_bins, cfg["calibration_space"], cfg["n_cal"], cfg["n_boot_cal"], int(cfg["seed"]),
                      hashes)
    cal.path = write_calibration(cfg, sigma_gev, cal, fingerprint=made, training_space=cal_set.space,
                                 streams=json.dumps([CALIBRATION_STREAM, MEASUREMENT_STREAM, BOOTSTRAP_STREAM]))
    return cal


def report(sigma_gev: float, cal: Calibration, seconds: float) -> str:
    def spread(x):
        return f"{np.median(x):.2f} [{np.min(x):.2f}, {np.max(x):.2f}]"
    parts = [f"Q_{c} = {spread(f.Q)}, coverage on the set {100 * np.mean(f.coverage):.1f} %"
             for c, f in cal.factors.items()]
    return (f"sigma = {sigma_gev}: N_cal = {cal.n_cal} ({cal.space}), N_boot,cal = {cal.n_boot_cal}, "
            f"{cal.n_bins} bin(s) of {calibration.FEATURE} for the audience centre; "
            f"{'; '.join(parts)}; S = {spread(cal.S)} (median [min, max] over energies); {seconds:.0f} s\n"
            f"  wrote {cal.path}")


def calibrate(cfg, sigmas=None, force: bool = False, device=None) -> dict:
    """Calibrate each σ of ``sigmas`` (default: the preset's) that is not up to date (or all with
    ``force``); returns {"written": [σ], "up to date": [σ]}."""
    check_writable(cfg.calibration_file(cfg["sigmas_gev"][0]).parent, "calibration files")
    device = select_device(device, cfg["tf32"])
    noise = load_noise_file(cfg.input_path(cfg["noise_file"]), cfg)
    done = {"written": [], "up to date": []}
    cal_set = None
    for sigma_gev in sigmas or cfg["sigmas_gev"]:
        hashes = checkpoint_hashes(cfg, calibration_networks(cfg, sigma_gev))
        made = made_of(cfg, hashes)
        if not force and up_to_date(cfg, sigma_gev, made):
            print(f"sigma = {sigma_gev}: up to date: {cfg.calibration_file(sigma_gev)} (same networks, noise "
                  "file and settings; --force redoes it)")
            done["up to date"].append(sigma_gev)
            continue
        t0 = time.perf_counter()
        networks = load_networks(cfg, sigma_gev, device)        # every input checked before computing
        work = workload(cfg)
        print(f"sigma = {sigma_gev}: N_cal = {cfg['n_cal']} densities x N_boot,cal = {cfg['n_boot_cal']} = "
              f"{work['samples']} samples, each predicted by {work['networks']} networks ({work['evaluations']:.3g} "
              f"network evaluations) in {work['chunks']} chunk(s) of up to {CHUNK_ITEMS} densities; about "
              f"{work['bytes'] / 2**20:.3g} MiB of memory; the progress bars show the time left", flush=True)
        if cal_set is None:
            cal_set = calibration_set(cfg)
        cal = calibrate_sigma(cfg, sigma_gev, networks, cal_set, noise, made, hashes)
        print(report(sigma_gev, cal, time.perf_counter() - t0), flush=True)
        done["written"].append(sigma_gev)
    return done


@main_guard
def main(argv=None) -> int:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--sigma", type=float, action="append",
                        help="calibrate only this σ (GeV) of the preset (repeatable; default: every σ)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--force", action="store_true",
                        help="redo calibration files that are up to date (same networks, noise file, settings)")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    unknown = sorted(set(args.sigma or []) - set(cfg["sigmas_gev"]))
    if unknown:
        raise InputError(cfg.calibration_file(unknown[0]), "sigma", f"{unknown} is not among the preset's "
                         f"sigmas_gev {cfg['sigmas_gev']}")
    configure_threads()
    calibrate(cfg, args.sigma, args.force, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())

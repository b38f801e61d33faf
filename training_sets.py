"""Stage 1: the HDF5 training sets (method §3-5, §7, §10), written and read here.

One call generates, for one N_b, the file of every N_ρ of the preset.  They are prefixes of one
stream: the samples are drawn in blocks of ``rng_block`` samples, block k from its own generator
``rng_for(cfg, 'training-space', N_b, k)`` (and its noise from ``'training-noise'``), so a sample
does not depend on N_ρ, on the chunking or on the number of worker processes.  Only the
standardisation differs between the files: μ and γ are those of each file's own clean correlators
(method §5; std with ddof = 0).

The other training spaces (sigma_model_utils.SPACES) are made the same way, each from its own
streams ``'training-space-<space>'`` and ``'training-noise-<space>'``, into its own files, only
for the N_ρ their ensembles use:
  prior     the second Chebyshev space of the prior systematic:
            ``training_data_prior_Nb{NB}_Nrho{NRHO}.hdf5``, datasets E0 and coefficients;
  physical  the physical space P (physical_space.py): ``training_data_physical_Nrho{NRHO}.hdf5``.
            P has no basis, so its files and streams carry no N_b: every ensemble of P with the
            same N_ρ trains on the same file.  Each sample is stored as P's parameter tables
            (datasets states, resonances, thresholds, continuum; their columns in the attribute
            ``parameter_columns``) instead of E0 and coefficients;
  mixture   half Chebyshev (N_b basis functions), half P, interleaved: in every block the
            samples at even positions are Chebyshev, those at odd positions P, all drawn from the
            one stream ``'training-space-mixture'`` (Chebyshev coefficients first, then P's
            parameters): ``training_data_mixture_Nb{NB}_Nrho{NRHO}.hdf5``, with both kinds of
            parameter datasets (NaN in the rows of the other kind) and ``sample_space`` [N_ρ]
            (0: Chebyshev, 1: P).
Every file records its space and the space's parameters in the attribute ``functional_space``.

Two passes, memory bounded by the clean correlators (N_ρ · n_t · 8 bytes) and a few blocks:
  1. E0, coefficients, exact correlators and targets, block by block (in worker processes),
     streamed into every file that contains the block;
  2. μ, γ of each file, then N_noise noisy copies per sample, standardised and streamed as float32.
All files are written under temporary names and renamed only when complete.  A complete file made
with the same generation parameters is kept (and reported), not redone.

``load_training_data`` reads one file back and checks it against the preset (numpy arrays; the
trainer moves them to its device).
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

import physical_space
from io_utils import (
    DamagedFile,
    InputError,
    atomic_output,
    check_free_space,
    check_writable,
    checksummed_dataset,
    file_sha256,
    open_h5,
    provenance,
    raise_if_locked,
    read_dataset,
    remove_stale_temporaries,
    task_lock,
    write_attrs,
)
from noise_files import NoiseModel, covariance_cholesky, load_noise_file
from sigma_model_utils import (
    SPACES,
    add_noise,
    correlators_and_targets,
    noise_scale,
    rng_for,
    sample_coefficients,
    space_parameters,
    standardise,
)
from tasks import ensemble_space, generated_nrhos, training_runs_table


def target_key(sigma_gev: float) -> str:
    """The training-file dataset of the smeared targets for σ as written in the preset (method §10)."""
    return f"clean_smeared_rho_sigma_{sigma_gev}"


# The preset values a training file depends on (besides N_b, N_ρ and the noise file's content).
GENERATION_KEYS = ("kernel", "T", "t_min", "t_max", "a_inv_gev", "energy_min_gev", "energy_max_gev",
                   "n_energies", "sigmas_gev", "E0_min", "E0_max", "epsilon", "n_noise", "seed",
                   "rng_block")


# the mixture's sample_space codes
CHEBYSHEV_SAMPLE, PHYSICAL_SAMPLE = 0, 1


def space_record(cfg, space: str) -> dict:
    """A training space and the parameters that define it (the attribute ``functional_space``)."""
    if space == "physical":
        return json.loads(json.dumps({"space": space, **physical_space.RANGES}))
    if space == "mixture":
        return {"space": space, "chebyshev": space_parameters(cfg, "chebyshev"),
                "physical": space_record(cfg, "physical"),
                "interleaving": "even positions of each block chebyshev, odd positions physical"}
    return space_parameters(cfg, space)


def parameter_datasets(cfg, nb: int | None, space: str) -> dict:
    """The datasets that store each sample's parameters: {name: (shape after N_ρ, dtype)}."""
    chebyshev = {"E0": ((), "f8"), "coefficients": ((nb,), "f8")}
    physical = {kind: (((physical_space.SLOTS[kind],) if kind != "continuum" else ())
                       + (len(physical_space.COLUMNS[kind]),), "f8") for kind in physical_space.PARAMETER_TABLES}
    if space == "physical":
        return physical
    if space == "mixture":
        return {**chebyshev, **physical, "sample_space": ((), "i1")}
    return chebyshev


def generation_fingerprint(cfg, nb: int | None, nrho: int, noise_sha256: str, space: str = "chebyshev") -> str:
    """What makes two training files interchangeable: equal fingerprints, equal contents."""
    values = {key: cfg[key] for key in GENERATION_KEYS}
    record = {"values": values, "nb": nb, "nrho": nrho, "noise_sha256": noise_sha256}
    if space != "chebyshev":
        record["space"] = space_record(cfg, space)
    return json.dumps(record, sort_keys=True)


def is_complete(path: Path, fingerprint: str) -> bool:
    """A file at ``path`` exists (so it was renamed into place complete) and was made the same way.
    A file another process holds open for writing raises io_utils.TaskLocked (never remade)."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as h5:
            return h5.attrs.get("generation_fingerprint") == fingerprint
    except OSError as err:
        raise_if_locked(path, err)
        return False


def _stream(purpose: str, space: str) -> str:
    """The random-stream name of a space: the Chebyshev space keeps the names it always had."""
    return purpose if space == "chebyshev" else f"{purpose}-{space}"


# The purposes of the training files' streams (each space's name appended by _stream): what training
# and early stopping have seen.  Any other set of densities draws from streams of its own.
TRAINING_PURPOSES = ("training-space", "training-noise")


def check_own_stream(purpose: str) -> None:
    """Refuse ``purpose`` as the stream of a set of densities that must be unseen by training (the
    calibration set, a validation family): for any space, its stream name, or the name's tag in
    sigma_model_utils.rng_for, must not be one of the training files' streams."""
    training = {_stream(p, s) for p in TRAINING_PURPOSES for s in SPACES}
    tags = {zlib.crc32(name.encode()) for name in training}
    for space in SPACES:
        name = _stream(purpose, space)
        if name in training or zlib.crc32(name.encode()) in tags:
            raise ValueError(f"random stream {name!r} is one of the training files' streams "
                             f"({sorted(training)}): a set that training must not have seen needs a stream of its own")


def space_samples(cfg, nb: int | None, n: int, space: str, purpose: str, progress: bool = False):
    """The first n samples of a space drawn block by block as the training files' are (clean_block),
    but from the stream ``purpose`` (checked to be none of the training files', check_own_stream):
    (parameters {dataset: [n, ...]}, exact correlators [n, n_t], exact targets {σ: [n, N_E]}); with
    ``progress`` a progress bar over the blocks."""
    check_own_stream(purpose)
    blocks = [clean_block(cfg, nb, k, space, purpose)
              for k in tqdm(range(-(-n // cfg["rng_block"])), disable=not progress, desc=f"{purpose} densities",
                            unit="block")]
    params = {name: np.concatenate([b[0][name] for b in blocks])[:n] for name in blocks[0][0]}
    correlators = np.concatenate([b[1] for b in blocks])[:n]
    targets = {s: np.concatenate([b[2][s] for b in blocks])[:n] for s in blocks[0][2]}
    return params, correlators, targets


def _keys(nb: int | None, block: int, space: str) -> tuple:
    """The keys of a block's generators: (N_b, block), or (block,) for P, which has no N_b."""
    return (block,) if space == "physical" else (nb, block)


def clean_block(cfg, nb: int | None, block: int, space: str = "chebyshev", purpose: str = "training-space"):
    """Block ``block`` of the stream ``purpose`` (the training files': training-space): its
    parameters {dataset: [n, ...]} (parameter_datasets), C [n, n_t] and {σ: ρ_σ [n, N_E]}."""
    n = cfg["rng_block"]
    rng = rng_for(cfg, _stream(purpose, space), *_keys(nb, block, space))
    if space == "physical":
        params = physical_space.sample_parameters(rng, n)
        return (params, *physical_space.correlators_and_targets(params, cfg))
    if space != "mixture":
        E0, c = sample_coefficients(rng, n, nb, cfg, space)
        return ({"E0": E0, "coefficients": c}, *correlators_and_targets(E0, c, cfg, space=space))
    kind = np.arange(n) % 2                      # CHEBYSHEV_SAMPLE at even positions, P at odd
    cheb, phys = kind == CHEBYSHEV_SAMPLE, kind == PHYSICAL_SAMPLE
    E0, c = sample_coefficients(rng, cheb.sum(), nb, cfg)
    tables = physical_space.sample_parameters(rng, phys.sum())
    parts = [(cheb, correlators_and_targets(E0, c, cfg)), (phys, physical_space.correlators_and_targets(tables, cfg))]
    params = {name: np.full((n, *shape), np.nan) for name, (shape, _) in parameter_datasets(cfg, nb, space).items()}
    params["sample_space"] = kind.astype(np.int8)
    params["E0"][cheb], params["coefficients"][cheb] = E0, c
    for name, table in tables.items():
        params[name][phys] = table
    correlators = np.empty((n, cfg.n_t))
    targets = {s: np.empty((n, len(cfg.energies))) for s in cfg["sigmas_gev"]}
    for rows, (corr, targ) in parts:
        correlators[rows] = corr
        for s in targets:
            targets[s][rows] = targ[s]
    return params, correlators, targets


def noisy_block(cfg, nb: int | None, block: int, correlators: np.ndarray, noise,
                space: str = "chebyshev") -> np.ndarray:
    """The N_noise noisy copies [n, N_noise, n_t] (float64, not standardised) of block ``block``."""
    rng = rng_for(cfg, _stream("training-noise", space), *_keys(nb, block, space))
    return add_noise(correlators, noise, rng, cfg["n_noise"])


def _clean_worker(job):
    cfg, nb, block, space = job
    return block, clean_block(cfg, nb, block, space)


def default_workers() -> int:
    """Worker processes: $SLURM_CPUS_PER_TASK, else the cores this process may use."""
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))
    return max(1, len(os.sched_getaffinity(0)))


def _create_datasets(h5, cfg, nb: int | None, nrho: int, noise, space: str) -> None:
    n_t, n_e, block = cfg.n_t, len(cfg.energies), cfg["rng_block"]
    chunk = (min(block, nrho),)
    for name, (shape, dtype) in parameter_datasets(cfg, nb, space).items():
        checksummed_dataset(h5, name, (nrho, *shape), dtype, chunks=chunk + shape)
    checksummed_dataset(h5, "clean_correlators", (nrho, n_t), chunks=chunk + (n_t,))
    for sigma in cfg["sigmas_gev"]:
        checksummed_dataset(h5, target_key(sigma), (nrho, n_e), chunks=chunk + (n_e,))
    checksummed_dataset(h5, "noise_scale", (nrho,), chunks=chunk)
    checksummed_dataset(h5, "standardized_noisy_correlators", (nrho, cfg["n_noise"], n_t), "f4",
             chunks=chunk + (cfg["n_noise"], n_t))
    for name, values in (("t", cfg.t), ("energies", cfg.energies), ("noise_mean", noise.mean),
                         ("noise_cov", noise.cov)):
        checksummed_dataset(h5, name, data=values)


def training_file_bytes(cfg, nb: int | None, nrho: int, space: str = "chebyshev") -> int:
    """The size of one training file as _create_datasets lays it out (uncompressed), plus 256 kB of
    HDF5 metadata: what generation checks the disk has room for before it starts."""
    per_sample = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
                     for shape, dtype in parameter_datasets(cfg, nb, space).values())
    per_sample += 8 * (cfg.n_t + len(cfg["sigmas_gev"]) * cfg["n_energies"] + 1)
    per_sample += 4 * cfg["n_noise"] * cfg.n_t
    return nrho * per_sample + 8 * (2 * cfg.n_t + cfg["n_energies"] + cfg.n_t ** 2) + 2**18


def _files_holding(files: dict, lo: int, block: int):
    """(file, lo, hi, n) for each open file whose first N_ρ samples include block [lo, lo + block)."""
    for nrho, h5 in files.items():
        hi = min(lo + block, nrho)
        if hi > lo:
            yield h5, lo, hi, hi - lo


def _label(nb: int | None, space: str) -> str:
    return "P" if space == "physical" else f"N_b={nb}"


def generation_command(cfg, nb: int | None, space: str) -> str:
    """The command that makes the training files of (N_b, space) (P: no N_b)."""
    which = ("--space", space) if space == "physical" else ("--nb", nb, "--space", space)
    return cfg.command("generate_full_dataset_sigma.py", *which)


def generate_training_files(cfg, nb: int | None, workers: int | None = None, progress: bool = True,
                            log=print, space: str = "chebyshev", wait_lock: bool = False) -> list[Path]:
    """Write (or keep) the training files of a space for this N_b, one per N_ρ of
    ``tasks.generated_nrhos`` (the Chebyshev space: every N_ρ of the preset); return them.
    The physical space has no N_b (``nb`` is ignored there).

    One process generates an N_b of a space (cfg.generation_lock; another stops with
    io_utils.TaskLocked, or with ``wait_lock`` waits); holding the lock it first removes the
    temporaries of its files that a killed run left.
    """
    nb = None if space == "physical" else nb
    outputs = [cfg.training_file(nb, nrho, space) for nrho in generated_nrhos(cfg, space)]
    check_writable(outputs[0].parent, "training files")
    with task_lock(cfg.generation_lock(nb, space), f"the generation of {_label(nb, space)} ({space} space)",
                   wait_lock, log):
        stale = remove_stale_temporaries(outputs)
        if stale:
            log(f"removed {len(stale)} temporary file(s) of a killed generation: "
                f"{', '.join(p.name for p in stale)}")
        return _generate_training_files(cfg, nb, workers, progress, log, space)


def _generate_training_files(cfg, nb: int | None, workers, progress: bool, log, space: str) -> list[Path]:
    label = _label(nb, space)
    noise_path = cfg.input_path(cfg["noise_file"])
    noise = load_noise_file(noise_path, cfg)
    noise_sha = file_sha256(noise_path)
    paths = {nrho: cfg.training_file(nb, nrho, space) for nrho in generated_nrhos(cfg, space)}
    fingerprints = {nrho: generation_fingerprint(cfg, nb, nrho, noise_sha, space) for nrho in paths}
    todo = [nrho for nrho in paths if not is_complete(paths[nrho], fingerprints[nrho])]
    for nrho in paths:
        if nrho not in todo:
            log(f"kept   {paths[nrho]} (complete, same generation parameters)")
    if not todo:
        return list(paths.values())
    check_free_space(paths[todo[0]].parent, sum(training_file_bytes(cfg, nb, nrho, space) for nrho in todo),
                     f"{len(todo)} training file(s) of {label}")

    n_total, block = max(todo), cfg["rng_block"]
    n_blocks = -(-n_total // block)
    correlators = np.empty((n_blocks * block, cfg.n_t))
    workers = workers or default_workers()
    record = provenance(cfg, kernel=cfg["kernel"], T=cfg["T"], nb=nb, n_noise=cfg["n_noise"],
                        noise_file=str(noise_path), noise_sha256=noise_sha,
                        noise_source=noise.source,
                        functional_space=json.dumps(space_record(cfg, space), sort_keys=True),
                        standardisation="mu = mean, gamma = std (ddof=0) "
                        "of this file's clean correlators")
    if space in ("physical", "mixture"):
        record["parameter_columns"] = json.dumps(physical_space.COLUMNS)
    with contextlib.ExitStack() as stack:
        files = {}
        for nrho in todo:
            tmp = stack.enter_context(atomic_output(paths[nrho]))
            h5 = stack.enter_context(h5py.File(tmp, "w", rdcc_nbytes=0))
            _create_datasets(h5, cfg, nb, nrho, noise, space)
            write_attrs(h5, dict(record, nrho=nrho, generation_fingerprint=fingerprints[nrho]))
            files[nrho] = h5

        # pass 1: samples, exact correlators and targets
        jobs = [(cfg, nb, k, space) for k in range(n_blocks)]
        # workers die on SIGTERM (the pool's own shutdown signal), not through the parent's handler
        pool = (multiprocessing.get_context("fork").Pool(workers, initializer=signal.signal,
                                                         initargs=(signal.SIGTERM, signal.SIG_DFL))
                if workers > 1 else contextlib.nullcontext())
        with pool as workers_pool:          # None for a single process
            results = workers_pool.imap(_clean_worker, jobs) if workers_pool else map(_clean_worker, jobs)
            for k, (params, corr, targets) in tqdm(results, total=n_blocks, disable=not progress,
                                                   desc=f"{label} exact correlators", unit="block"):
                lo = k * block
                correlators[lo:lo + block] = corr
                for h5, start, stop, n in _files_holding(files, lo, block):
                    for name, values in params.items():
                        h5[name][start:stop] = values[:n]
                    h5["clean_correlators"][start:stop] = corr[:n]
                    for sigma in cfg["sigmas_gev"]:
                        h5[target_key(sigma)][start:stop] = targets[sigma][:n]

        # pass 2: standardisation of each file, noisy copies
        scales = {}
        for nrho, h5 in files.items():
            clean = correlators[:nrho]
            scales[nrho] = (clean.mean(axis=0), clean.std(axis=0))
            checksummed_dataset(h5, "mu_vector", data=scales[nrho][0])
            checksummed_dataset(h5, "gamma_vector", data=scales[nrho][1])
        for k in tqdm(range(n_blocks), disable=not progress, desc=f"{label} noisy copies", unit="block"):
            lo = k * block
            corr = correlators[lo:lo + block]
            noisy = noisy_block(cfg, nb, k, corr, noise, space)
            s = noise_scale(corr, noise)
            for h5, start, stop, n in _files_holding(files, lo, block):
                h5["noise_scale"][start:stop] = s[:n]
                h5["standardized_noisy_correlators"][start:stop] = standardise(noisy[:n],
                                                                          *scales[h5.attrs["nrho"]])
    for nrho in todo:
        log(f"wrote  {paths[nrho]}")
    return list(paths.values())


# --- reading -----------------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """One training file in memory (numpy).  ``inputs`` [N·N_noise, n_t] float32 (row i·N_noise + j
    is stored noisy copy j of sample i; None unless asked for) and ``targets`` [N, N_E] float32."""
    path: Path
    inputs: np.ndarray | None
    targets: np.ndarray
    n_samples: int
    n_noise: int
    mu: np.ndarray
    gamma: np.ndarray
    t: np.ndarray
    energies: np.ndarray
    nb: int
    nrho: int
    clean: np.ndarray | None = None          # float64 [N, n_t], to draw noise of one's own
    noise: NoiseModel | None = None          # the file's noise_mean, noise_cov


def load_training_data(cfg, ensemble: str, sigma_gev: float, noisy: bool = True,
                       clean: bool = False) -> TrainingData:
    """Read and check the training file of ``ensemble`` (method §10) for the target of σ: with
    ``noisy`` the stored noisy copies, with ``clean`` the clean correlators and the noise model."""
    run = training_runs_table(cfg)[ensemble]
    nb, nrho = run["nb"], run["nrho"]
    space = ensemble_space(cfg, ensemble)
    path = cfg.training_file(nb, nrho, space)
    remake = f"`{generation_command(cfg, nb, space)}`"
    what = f"training file of ensemble {ensemble} (N_b={nb}, N_rho={nrho}, {space} space); make it with {remake}"
    try:
        return _read_training_file(cfg, path, what, ensemble, sigma_gev, noisy, clean, space)
    except DamagedFile as err:
        raise InputError(path, err.key, f"{err.problem}; delete {path} and make it again with {remake}") from None


def check_made_with(cfg, path, attrs, nb: int) -> None:
    """Training takes what its file holds: a setting that shaped the file (GENERATION_KEYS but the
    list of σ, and the noise file's content) and disagrees with it is refused, naming both values.
    (N_noise only with the stored noise: the other noise modes draw their own copies.)"""
    if "generation_fingerprint" not in attrs:
        return
    made = json.loads(attrs["generation_fingerprint"])
    remake = cfg.command("generate_full_dataset_sigma.py", "--nb", nb)
    free = {"sigmas_gev"} | ({"n_noise"} if cfg["noise"] != "stored" else set())
    for key, value in made["values"].items():
        if key not in free and key in cfg and value != cfg[key]:
            raise InputError(path, key, f"the file was generated with {key}={value!r}, the settings say "
                             f"{cfg[key]!r}; train with the file's value (drop the override) or make the "
                             f"file again with `{remake}`")
    noise_path = cfg.input_path(cfg["noise_file"])
    if noise_path.is_file() and file_sha256(noise_path) != made["noise_sha256"]:
        raise InputError(path, "noise_sha256", f"the file was generated with the noise file "
                         f"{attrs.get('noise_file', '?')} (SHA-256 {made['noise_sha256'][:12]}...), not with "
                         f"noise_file={cfg['noise_file']!r}; train with that noise file or make the file again "
                         f"with `{remake}`")


def _read_training_file(cfg, path, what, ensemble, sigma_gev, noisy, clean, space) -> TrainingData:
    run = training_runs_table(cfg)[ensemble]
    nb, nrho = run["nb"], run["nrho"]
    with open_h5(path, what) as h5:
        check_made_with(cfg, path, h5.attrs, nb)     # first: it names the setting that differs
        if "functional_space" in h5.attrs:
            made, want = json.loads(h5.attrs["functional_space"]), space_record(cfg, space)
            if made != want:
                raise InputError(path, "functional_space", f"{made}, but ensemble {ensemble} "
                                 f"trains on {want}")
        key = target_key(sigma_gev)
        if key not in h5:
            have = sorted(k for k in h5 if k.startswith("clean_smeared_rho_sigma_"))
            raise InputError(path, key, f"missing: no targets for sigma={sigma_gev}; the file has {have}")
        for attr, want in (("kernel", cfg["kernel"]), ("T", cfg["T"])):
            if attr in h5.attrs and str(h5.attrs[attr]) != str(want):
                raise InputError(path, attr, f"{h5.attrs[attr]!r}, but the preset has {want!r}")
        t = read_dataset(h5, "t", (None,))
        if t.shape != cfg.t.shape or not np.array_equal(t, cfg.t):
            raise InputError(path, "t", f"time slices {t.astype(int).tolist()}; the preset expects "
                             f"t={cfg['t_min']}..{cfg['t_max']} (another time geometry)")
        n_t = len(t)
        energies = read_dataset(h5, "energies", (None,))
        if energies.shape != cfg.energies.shape or not np.allclose(energies, cfg.energies, rtol=1e-12):
            raise InputError(path, "energies", f"{len(energies)} energies; expected the preset's "
                             f"grid of {len(cfg.energies)}")
        stored = "standardized_noisy_correlators"
        inputs = None
        if noisy:
            inputs = read_dataset(h5, stored, (None, None, n_t), np.float32)
            n_samples, n_noise = inputs.shape[:2]
            inputs = inputs.reshape(n_samples * n_noise, n_t)
        elif stored in h5 and h5[stored].ndim == 3:
            n_samples, n_noise = h5[stored].shape[:2]
        else:
            raise InputError(path, stored, "missing or not [N_rho, N_noise, n_t] (method §10)")
        if n_samples != nrho:
            raise InputError(path, stored, f"{n_samples} samples; expected N_rho={nrho}")
        targets = read_dataset(h5, key, (n_samples, len(energies))).astype(np.float32)
        mu = read_dataset(h5, "mu_vector", (n_t,))
        gamma = read_dataset(h5, "gamma_vector", (n_t,))
        correlators = noise = None
        if clean:
            correlators = read_dataset(h5, "clean_correlators", (n_samples, n_t))
            mean = read_dataset(h5, "noise_mean", (n_t,))
            cov = read_dataset(h5, "noise_cov", (n_t, n_t))
            noise = NoiseModel(mean, cov, t.copy(), covariance_cholesky(cov, path, "noise_cov"),
                               "training file", str(path))
            stored_scale = read_dataset(h5, "noise_scale", (n_samples,))
            if not np.allclose(noise_scale(correlators, noise), stored_scale, rtol=1e-10):
                raise InputError(path, "noise_scale", "disagrees with clean_correlators[:, 0] / "
                                 "noise_mean[0] (method §4)")
    return TrainingData(path=path, inputs=inputs, targets=targets, n_samples=n_samples,
                        n_noise=n_noise, mu=mu, gamma=gamma, t=t, energies=energies, nb=nb,
                        nrho=nrho, clean=correlators, noise=noise)

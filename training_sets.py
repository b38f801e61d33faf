"""Stage 1: the HDF5 training sets (SPEC §3-5, §7, §10), written and read here.

One call generates, for one N_b, the file of every N_ρ of the preset.  They are prefixes of one
stream: the samples are drawn in blocks of ``rng_block`` samples, block k from its own generator
``rng_for(cfg, 'training-space', N_b, k)`` (and its noise from ``'training-noise'``), so a sample
does not depend on N_ρ, on the chunking or on the number of worker processes.  Only the
standardisation differs between the files: μ and γ are those of each file's own clean correlators
(SPEC §5; std with ddof = 0).

The second space of the prior systematic (SPEC §8, ``space='prior'``) is made the same way, from
its own streams ``'training-space-prior'`` and ``'training-noise-prior'``, into its own files
(``training_data_prior_Nb{NB}_Nrho{NRHO}.hdf5``, only the N_ρ its ensemble uses); every file
records its space and the space's parameters in the attribute ``functional_space``.

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
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from io_utils import (DamagedFile, InputError, atomic_output, check_free_space, check_writable, file_sha256,
                      open_h5, provenance, raise_if_locked, read_dataset, remove_stale_temporaries, task_lock,
                      write_attrs)
from noise_files import NoiseModel, covariance_cholesky, load_noise_file
from sigma_model_utils import (add_noise, correlators_and_targets, noise_scale, quadrature_rule, rng_for,
                               sample_coefficients, space_parameters, standardise)
from tasks import ensemble_space, generated_nrhos


def target_key(sigma_gev: float) -> str:
    """The training-file dataset of the smeared targets for σ as written in the preset (SPEC §10)."""
    return f"clean_smeared_rho_sigma_{sigma_gev}"


# The preset values a training file depends on (besides N_b, N_ρ and the noise file's content).
GENERATION_KEYS = ("kernel", "T", "t_min", "t_max", "a_inv_gev", "energy_min_gev", "energy_max_gev",
                   "n_energies", "sigmas_gev", "E0_min", "E0_max", "epsilon", "n_noise", "seed",
                   "rng_block")


def generation_fingerprint(cfg, nb: int, nrho: int, noise_sha256: str, space: str = "chebyshev") -> str:
    """What makes two training files interchangeable: equal fingerprints, equal contents."""
    values = {key: cfg[key] for key in GENERATION_KEYS}
    record = {"values": values, "nb": nb, "nrho": nrho, "noise_sha256": noise_sha256}
    if space != "chebyshev":
        record["space"] = space_parameters(cfg, space)
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


def clean_block(cfg, nb: int, block: int, rule=None, space: str = "chebyshev"):
    """Block ``block`` of the stream: E0 [n], c [n, N_b], C [n, n_t], {σ: ρ_σ [n, N_E]}."""
    rng = rng_for(cfg, _stream("training-space", space), nb, block)
    E0, c = sample_coefficients(rng, cfg["rng_block"], nb, cfg, space)
    correlators, targets = correlators_and_targets(E0, c, cfg, rule, space)
    return E0, c, correlators, targets


def noisy_block(cfg, nb: int, block: int, correlators: np.ndarray, noise, space: str = "chebyshev") -> np.ndarray:
    """The N_noise noisy copies [n, N_noise, n_t] (float64, not standardised) of block ``block``."""
    rng = rng_for(cfg, _stream("training-noise", space), nb, block)
    return add_noise(correlators, noise, rng, cfg["n_noise"])


def _clean_worker(job):
    cfg, nb, block, space = job
    return block, clean_block(cfg, nb, block, quadrature_rule(cfg, nb, space), space)


def default_workers() -> int:
    """Worker processes: $SLURM_CPUS_PER_TASK, else the cores this process may use."""
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))
    return max(1, len(os.sched_getaffinity(0)))


def _dataset(h5, name: str, shape=None, dtype="f8", chunks=None, data=None):
    """A dataset of the training file, every chunk with a Fletcher-32 checksum: a damaged byte is
    an error when it is read, not a wrong number."""
    return h5.create_dataset(name, shape, dtype, data=data, chunks=chunks, fletcher32=True)


def _create_datasets(h5, cfg, nb: int, nrho: int, noise) -> None:
    n_t, n_e, block = cfg.n_t, len(cfg.energies), cfg["rng_block"]
    chunk = (min(block, nrho),)
    _dataset(h5, "E0", (nrho,), chunks=chunk)
    _dataset(h5, "coefficients", (nrho, nb), chunks=chunk + (nb,))
    _dataset(h5, "clean_correlators", (nrho, n_t), chunks=chunk + (n_t,))
    for sigma in cfg["sigmas_gev"]:
        _dataset(h5, target_key(sigma), (nrho, n_e), chunks=chunk + (n_e,))
    _dataset(h5, "noise_scale", (nrho,), chunks=chunk)
    _dataset(h5, "standardized_noisy_correlators", (nrho, cfg["n_noise"], n_t), "f4",
             chunks=chunk + (cfg["n_noise"], n_t))
    for name, values in (("t", cfg.t), ("energies", cfg.energies), ("noise_mean", noise.mean),
                         ("noise_cov", noise.cov)):
        _dataset(h5, name, data=values)


def training_file_bytes(cfg, nb: int, nrho: int) -> int:
    """The size of one training file as _create_datasets lays it out (uncompressed), plus 256 kB of
    HDF5 metadata: what generation checks the disk has room for before it starts."""
    per_sample = 8 * (1 + nb + cfg.n_t + len(cfg["sigmas_gev"]) * cfg["n_energies"] + 1)
    per_sample += 4 * cfg["n_noise"] * cfg.n_t
    return nrho * per_sample + 8 * (2 * cfg.n_t + cfg["n_energies"] + cfg.n_t ** 2) + 2**18


def _files_holding(files: dict, lo: int, block: int):
    """(file, lo, hi, n) for each open file whose first N_ρ samples include block [lo, lo + block)."""
    for nrho, h5 in files.items():
        hi = min(lo + block, nrho)
        if hi > lo:
            yield h5, lo, hi, hi - lo


def generate_training_files(cfg, nb: int, workers: int | None = None, progress: bool = True,
                            log=print, space: str = "chebyshev", wait_lock: bool = False) -> list[Path]:
    """Write (or keep) the training files of a space for this N_b, one per N_ρ of
    ``tasks.generated_nrhos`` (the Chebyshev space: every N_ρ of the preset); return them.

    One process generates an N_b of a space (cfg.generation_lock; another stops with
    io_utils.TaskLocked, or with ``wait_lock`` waits); holding the lock it first removes the
    temporaries of its files that a killed run left.
    """
    outputs = [cfg.training_file(nb, nrho, space) for nrho in generated_nrhos(cfg, space)]
    check_writable(outputs[0].parent, "training files")
    with task_lock(cfg.generation_lock(nb, space), f"the generation of N_b={nb} ({space} space)", wait_lock, log):
        stale = remove_stale_temporaries(outputs)
        if stale:
            log(f"removed {len(stale)} temporary file(s) of a killed generation: "
                f"{', '.join(p.name for p in stale)}")
        return _generate_training_files(cfg, nb, workers, progress, log, space)


def _generate_training_files(cfg, nb: int, workers, progress: bool, log, space: str) -> list[Path]:
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
    check_free_space(paths[todo[0]].parent, sum(training_file_bytes(cfg, nb, nrho) for nrho in todo),
                     f"{len(todo)} training file(s) of N_b={nb}")

    n_total, block = max(todo), cfg["rng_block"]
    n_blocks = -(-n_total // block)
    correlators = np.empty((n_blocks * block, cfg.n_t))
    workers = workers or default_workers()
    record = provenance(cfg, kernel=cfg["kernel"], T=cfg["T"], nb=nb, n_noise=cfg["n_noise"],
                        noise_file=str(noise_path), noise_sha256=noise_sha,
                        noise_source=noise.source,
                        functional_space=json.dumps(space_parameters(cfg, space), sort_keys=True),
                        standardisation="mu = mean, gamma = std (ddof=0) "
                        "of this file's clean correlators")
    with contextlib.ExitStack() as stack:
        files = {}
        for nrho in todo:
            tmp = stack.enter_context(atomic_output(paths[nrho]))
            h5 = stack.enter_context(h5py.File(tmp, "w", rdcc_nbytes=0))
            _create_datasets(h5, cfg, nb, nrho, noise)
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
            for k, (E0, c, corr, targets) in tqdm(results, total=n_blocks, disable=not progress,
                                                  desc=f"N_b={nb} exact correlators", unit="block"):
                lo = k * block
                correlators[lo:lo + block] = corr
                for h5, lo, hi, n in _files_holding(files, lo, block):
                    h5["E0"][lo:hi] = E0[:n]
                    h5["coefficients"][lo:hi] = c[:n]
                    h5["clean_correlators"][lo:hi] = corr[:n]
                    for sigma in cfg["sigmas_gev"]:
                        h5[target_key(sigma)][lo:hi] = targets[sigma][:n]

        # pass 2: standardisation of each file, noisy copies
        scales = {}
        for nrho, h5 in files.items():
            clean = correlators[:nrho]
            scales[nrho] = (clean.mean(axis=0), clean.std(axis=0))
            _dataset(h5, "mu_vector", data=scales[nrho][0])
            _dataset(h5, "gamma_vector", data=scales[nrho][1])
        for k in tqdm(range(n_blocks), disable=not progress, desc=f"N_b={nb} noisy copies", unit="block"):
            lo = k * block
            corr = correlators[lo:lo + block]
            noisy = noisy_block(cfg, nb, k, corr, noise, space)
            s = noise_scale(corr, noise)
            for h5, lo, hi, n in _files_holding(files, lo, block):
                h5["noise_scale"][lo:hi] = s[:n]
                h5["standardized_noisy_correlators"][lo:hi] = standardise(noisy[:n],
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
    """Read and check the training file of ``ensemble`` (SPEC §10) for the target of σ: with
    ``noisy`` the stored noisy copies, with ``clean`` the clean correlators and the noise model."""
    nb, nrho = cfg["ensembles"][ensemble]["nb"], cfg["ensembles"][ensemble]["nrho"]
    space = ensemble_space(cfg, ensemble)
    path = cfg.training_file(nb, nrho, space)
    remake = f"`{cfg.command('generate_full_dataset_sigma.py', '--nb', nb, '--space', space)}`"
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
    nb, nrho = cfg["ensembles"][ensemble]["nb"], cfg["ensembles"][ensemble]["nrho"]
    with open_h5(path, what) as h5:
        check_made_with(cfg, path, h5.attrs, nb)     # first: it names the setting that differs
        if "functional_space" in h5.attrs:
            made, want = json.loads(h5.attrs["functional_space"]), space_parameters(cfg, space)
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
            raise InputError(path, stored, "missing or not [N_rho, N_noise, n_t] (SPEC §10)")
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
                                 "noise_mean[0] (SPEC §4)")
    return TrainingData(path=path, inputs=inputs, targets=targets, n_samples=n_samples,
                        n_noise=n_noise, mu=mu, gamma=gamma, t=t, energies=energies, nb=nb,
                        nrho=nrho, clean=correlators, noise=noise)

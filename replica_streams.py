"""What each replica draws (method §6-7): its random streams, and the noise it trains on.

Every stream derives from the preset's seed with ``rng_for(cfg, purpose, crc32(ensemble), 100σ,
replica, ...)``: the initialisation, the 80/20 split of the *clean* samples (all N_noise noisy
copies of a sample fall on the same side), the order of every epoch (keyed by the epoch) and the
noise (below).  Because every stream is keyed by its position, a resumed run draws exactly what
an uninterrupted one would: the "RNG state" of a run is its (epoch, step) counter.

The noise a replica trains on comes from one of three sources with one interface, chosen once
per run by the preset's ``noise`` (settings.NOISE_MODES):
- ``stored``: the training file's N_noise noisy copies, shared by every replica;
- ``replica``: N_noise noisy copies per clean sample of the replica's own, drawn once per run
  from ``rng_for(cfg, 'replica-noise', crc32(ensemble), 100σ, replica, block)`` for each block of
  ``rng_block`` samples (C + s L z of method §4 with the file's noise_mean and noise_cov):
  independent of the other replicas and of the stored copies, the same in every epoch and after
  a resume (an instance, not stored);
- ``fresh``: new noise for every occurrence of a sample, drawn per block of FRESH_BLOCK_STEPS
  steps from ``rng_for(cfg, 'fresh-noise', ..., epoch, block)``; validation on the stored copies.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch

from devices import to_device
from paths import sigma_tag
from pytorch_models_t32 import SpectralNet, build_model
from settings import NOISE_MODES, ConfigError
from sigma_model_utils import add_noise, rng_for, standardise

FRESH_BLOCK_STEPS = 256            # fresh noise is drawn for this many steps at a time


def keys(ensemble: str, sigma_gev: float, replica: int) -> tuple[int, int, int]:
    """The keys of every stream of one replica: (crc32(ensemble), 100σ, replica)."""
    return zlib.crc32(ensemble.encode()), sigma_tag(sigma_gev), int(replica)


def split_samples(cfg, ensemble: str, sigma_gev: float, replica: int, n_samples: int):
    """(train, validation) indices of the clean samples: a random val_fraction held out (method §6)."""
    perm = rng_for(cfg, "split", *keys(ensemble, sigma_gev, replica)).permutation(n_samples)
    n_val = int(round(cfg["val_fraction"] * n_samples))
    if n_val < 1 or n_val >= n_samples:
        raise ConfigError(f"val_fraction={cfg['val_fraction']} of {n_samples} samples leaves an empty side")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def noisy_items(samples: np.ndarray, n_noise: int) -> np.ndarray:
    """Item rows (row i·N_noise + j is noisy copy j of sample i) of the noisy copies of ``samples``."""
    return (samples[:, None] * n_noise + np.arange(n_noise)).ravel()


def epoch_order(cfg, ensemble: str, sigma_gev: float, replica: int, epoch: int,
                items: np.ndarray) -> np.ndarray:
    """The training items of one replica in the random order of epoch ``epoch`` (0-based)."""
    return items[rng_for(cfg, "order", *keys(ensemble, sigma_gev, replica), epoch).permutation(len(items))]


def initial_model(cfg, arch: str, ensemble: str, sigma_gev: float, replica: int, n_t: int,
                  n_out: int) -> SpectralNet:
    seed = int(rng_for(cfg, "init", *keys(ensemble, sigma_gev, replica)).integers(2**62))
    return build_model(arch, n_t, n_out, cfg["weight_std"], cfg["leaky_slope"],
                       torch.Generator().manual_seed(seed))


# --- the noise sources --------------------------------------------------------------------------
def noise_source_class(mode: str):
    """The noise source of ``mode``; built as cls(cfg, data, ensemble, σ, replicas, device) from a
    training_sets.TrainingData read with the stored copies if ``cls.needs_stored`` and with the
    clean correlators and noise model if ``cls.needs_clean``."""
    if mode not in NOISE_MODES:
        raise ConfigError(f"noise {mode!r}: expected one of {NOISE_MODES}")
    return {"stored": StoredNoise, "replica": ReplicaNoise, "fresh": FreshNoise}[mode]


class StoredNoise:
    """The training file's noisy copies, shared by every replica.

    The interface of every source: ``rows(replicas, idx)`` -> the inputs [N_r, m, n_t] of the item
    rows idx [N_r, m] of each replica (validation); ``batch(replicas, order, order_host, epoch, k)``
    -> the inputs of step k of an epoch whose item order is ``order`` [N_r, n_items] on the device,
    ``order_host`` the same on the host (training)."""
    mode = "stored"
    needs_stored, needs_clean = True, False

    def __init__(self, cfg, data, ensemble, sigma_gev, replicas, device):
        self.batch_size = cfg["batch_size"]
        self.inputs = torch.from_numpy(data.inputs).to(device)

    def rows(self, replicas, idx: torch.Tensor) -> torch.Tensor:
        return self.inputs[idx]

    def batch(self, replicas, order: torch.Tensor, order_host: np.ndarray, epoch: int, k: int) -> torch.Tensor:
        return self.rows(replicas, order[:, k * self.batch_size:(k + 1) * self.batch_size])


class ReplicaNoise(StoredNoise):
    """Each replica's own N_noise noisy copies of every clean sample (module docstring)."""
    mode = "replica"
    needs_stored, needs_clean = False, True

    def __init__(self, cfg, data, ensemble, sigma_gev, replicas, device):
        self.batch_size = cfg["batch_size"]
        self.slot = {r: i for i, r in enumerate(replicas)}
        self._slots = {}
        shape = (data.n_samples * data.n_noise, len(data.t))
        # memory: N_r·N·N_noise·n_t float32 on the device (5.1 GB at the reference size, README);
        # drawn on the host (numpy: the same numbers on every device) straight into the tensor on a
        # CPU, through one reused host buffer of one replica for a GPU
        self.inputs = torch.empty((len(replicas), *shape), dtype=torch.float32, device=device)
        on_cpu = self.inputs.device.type == "cpu"
        host = None if on_cpu else np.empty(shape, dtype=np.float32)
        for r in replicas:
            own = self.inputs[self.slot[r]].numpy() if on_cpu else host
            replica_noise_instance(cfg, data, ensemble, sigma_gev, r, out=own)
            if not on_cpu:     # a blocking copy from pageable memory: the buffer can be reused
                self.inputs[self.slot[r]].copy_(torch.from_numpy(host))

    def rows(self, replicas, idx: torch.Tensor) -> torch.Tensor:
        key = tuple(replicas)
        if key not in self._slots:         # once per group, a copy that does not wait
            self._slots[key] = to_device(np.array([[self.slot[r]] for r in replicas]), idx.device)
        return self.inputs[self._slots[key], idx]


def replica_noise_instance(cfg, data, ensemble: str, sigma_gev: float, replica: int,
                           out: np.ndarray | None = None) -> np.ndarray:
    """The standardised noisy copies [N·N_noise, n_t] (float32, row i·N_noise + j = copy j of
    sample i) of one replica, written into ``out`` if given: block b of rng_block samples from
    its own stream (module doc), so a sample's copies do not depend on N_ρ or on the grouping."""
    block, n_noise = cfg["rng_block"], data.n_noise
    if out is None:
        out = np.empty((data.n_samples * n_noise, len(data.t)), dtype=np.float32)
    for b, lo in enumerate(range(0, data.n_samples, block)):
        hi = min(lo + block, data.n_samples)
        rng = rng_for(cfg, "replica-noise", *keys(ensemble, sigma_gev, replica), b)
        noisy = add_noise(data.clean[lo:hi], data.noise, rng, n_noise)
        out[lo * n_noise:hi * n_noise] = standardise(noisy, data.mu, data.gamma).reshape(-1, len(data.t))
    return out


class FreshNoise(StoredNoise):
    """New noise for every occurrence of a sample; validation on the stored copies.

    Item rows of ``order`` name (sample, copy); with fresh noise the copy index only counts how
    often a sample is seen per epoch, and each occurrence gets its own z (method §4: C + s L z).
    """
    mode = "fresh"
    needs_stored, needs_clean = True, True

    def __init__(self, cfg, data, ensemble, sigma_gev, replicas, device):
        super().__init__(cfg, data, ensemble, sigma_gev, replicas, device)
        self.cfg, self.data, self.device = cfg, data, device
        self.ensemble, self.sigma_gev = ensemble, sigma_gev
        self._block = None              # (epoch, block, replicas) -> inputs of its steps

    def batch(self, replicas, order: torch.Tensor, order_host: np.ndarray, epoch: int, k: int) -> torch.Tensor:
        block, offset = divmod(k, FRESH_BLOCK_STEPS)
        if self._block is None or self._block[0] != (epoch, block, tuple(replicas)):
            self._block = ((epoch, block, tuple(replicas)), self._draw(replicas, order_host, epoch, block))
        lo = offset * self.batch_size
        return self._block[1][:, lo:lo + self.batch_size]

    def _draw(self, replicas, order_host: np.ndarray, epoch: int, block: int) -> torch.Tensor:
        """Standardised inputs with newly drawn noise for FRESH_BLOCK_STEPS steps of every replica
        (drawn on the host from the host copy of the order, sent without waiting for the device)."""
        span = FRESH_BLOCK_STEPS * self.batch_size
        samples = order_host[:, block * span:(block + 1) * span] // self.data.n_noise
        out = []
        for pos, r in enumerate(replicas):
            rng = rng_for(self.cfg, "fresh-noise", *keys(self.ensemble, self.sigma_gev, r), epoch, block)
            noisy = add_noise(self.data.clean[samples[pos]], self.data.noise, rng, 1)[:, 0, :]
            out.append(standardise(noisy, self.data.mu, self.data.gamma))
        return to_device(np.stack(out), self.device)

"""Training the replicas of one ensemble and σ (SPEC §5-7): the logic behind hpc_train_sigma.py.

What one replica does (SPEC §6):
- its own random streams, all derived from the preset's seed with ``rng_for(cfg, purpose,
  crc32(ensemble), 100σ, replica, ...)``: the initialisation, the 80/20 split of the *clean*
  samples (all N_noise noisy copies of a sample fall on the same side), the order of every epoch
  (keyed by the epoch) and, with ``noise="fresh"``, the noise of every block of steps (keyed by
  epoch and block).  Because every stream is keyed by its position, a resumed run draws exactly
  what an uninterrupted one would: the "RNG state" of a run is its (epoch, step) counter.
- an epoch is one pass, in a fresh random order, over the N_noise noisy copies of each training
  sample, in batches of ``batch_size`` (32); the last batch may be smaller.  The batch is a slice
  of an index permutation applied to tensors already in memory (on the GPU if there is one).
- Adam (torch.optim.Adam, default betas/eps), L1 loss (mean |ŷ − ρ_σ| over the batch and the N_E
  energies), learning rate lr·f(e) with the epoch index e = 0, 1, 2, ... (the history's
  ``epoch`` column is e + 1, the number of epochs completed):
        f(e) = 1                                   for e < lr_decay_start (= 25)
        f(e) = 1 / (1 + (e − 24)·lr_decay_rate)    for e ≥ 25, with 24 = lr_decay_start − 1
  i.e. the first 25 epochs run at lr, the 26th at lr/(1 + 4e−4), the 200th at lr/(1 + 176·4e−4).
- after each epoch: the L1 loss on all noisy copies of the held-out samples.  It is an improvement
  when it is below best − min_delta; the best network is then written as the self-contained
  checkpoint replica_{r}_best.pth (checkpoints.py).  Training stops after ``patience`` epochs
  without improvement or after ``max_epochs``.  The history (epoch, train_loss, val_loss, lr) is
  rewritten beside the checkpoint as replica_{r}_best_history.csv after every epoch.
- a resumable state replica_{r}_state.pth (weights, Adam moments and step, epoch and step
  counters, running train loss, early-stopping counters, history, the settings it was started
  with) is written atomically at every epoch end and when a stop is requested (SIGTERM/SIGUSR1,
  see ``Preemption``).  Started again with the same settings, training continues from there; a
  finished replica is reported and skipped.

Several replicas in one process are trained as one batched model (``StackedReplicas``:
parameters stacked along a replica axis, each layer one batched matrix product; see
pytorch_models_t32.py).  Each keeps its own seed, split, data order and early stopping; Adam
is element-wise, so one Adam over the stacked parameters is one Adam per replica.  The replicas of a group advance in lock-step (same epoch and step); a replica that
stops is removed from the stack, the others go on.  Its history equals that of a separate run up
to float round-off (tests/test_training.py).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from checkpoints import save_checkpoint
from config import ConfigError, parse_index_range, sigma_tag, target_key, training_tasks
from io_utils import InputError, atomic_output, open_h5, provenance, read_dataset
from pytorch_models_t32 import SpectralNet, StackedReplicas, build_model
from sigma_model_utils import NoiseModel, add_noise, covariance_cholesky, noise_scale, rng_for, standardise

STATE_FORMAT = "spectral-train-state/1"
NOISE_MODES = ("stored", "fresh")
FRESH_BLOCK_STEPS = 256            # fresh noise is drawn for this many steps at a time
EXIT_PREEMPTED = 75                # EX_TEMPFAIL: stopped on request, state saved, run again


# --- the machine ----------------------------------------------------------------------------
def configure_threads() -> int:
    """torch CPU threads = $SLURM_CPUS_PER_TASK, else $OMP_NUM_THREADS, else torch's default."""
    for name in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            torch.set_num_threads(int(value))
            break
    return torch.get_num_threads()


def select_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Preemption:
    """Context manager: SIGTERM or SIGUSR1 (what Slurm sends before a kill, or with --signal)
    sets ``requested``; the trainer then saves its state after the current step and returns."""
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._previous = {}

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name} received: saving the training state after this step", file=sys.stderr, flush=True)

    def __enter__(self):
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class NeverStop:
    requested = False


# --- which runs ---------------------------------------------------------------------------------
def preset_sigma(cfg, sigma) -> float:
    """σ as written in the preset (so file keys and directory tags match), or a ConfigError."""
    for s in cfg["sigmas_gev"]:
        if math.isclose(float(s), float(sigma), rel_tol=1e-9):
            return s
    raise ConfigError(f"sigma {sigma}: not among the preset's sigmas_gev {cfg['sigmas_gev']}")


def runs_from_task_ids(cfg, text: str) -> list[tuple[str, float, list[int]]]:
    """Slurm array indices ('7', '0-4', '0,5-9') -> [(ensemble, σ, [replicas])], via
    config.training_tasks, the one definition shared with the Slurm scripts and the local runner.
    Indices of one (ensemble, σ) are grouped so their replicas train as one batched model."""
    tasks = training_tasks(cfg)
    groups: dict[tuple[str, float], list[int]] = {}
    for i in parse_index_range(text):
        if not 0 <= i < len(tasks):
            raise ConfigError(f"--task-id {i}: the preset {cfg.preset!r} has training tasks 0..{len(tasks) - 1}")
        ensemble, replica, sigma = tasks[i]
        replicas = groups.setdefault((ensemble, sigma), [])
        if replica not in replicas:
            replicas.append(replica)
    return [(ens, s, sorted(r)) for (ens, s), r in groups.items()]


def check_run(cfg, ensemble: str, sigma, replicas) -> tuple[str, float, list[int]]:
    if ensemble not in cfg["ensembles"]:
        raise ConfigError(f"ensemble {ensemble!r}: expected one of {list(cfg['ensembles'])}")
    bad = [r for r in replicas if not 0 <= r < cfg["n_replicas"]]
    if bad:
        raise ConfigError(f"replicas {bad}: the preset has n_replicas={cfg['n_replicas']} (0..{cfg['n_replicas'] - 1})")
    return ensemble, preset_sigma(cfg, sigma), sorted(set(replicas))


# --- the training file -----------------------------------------------------------------------------
@dataclass
class TrainingData:
    """One training file in memory; ``inputs`` [N·N_noise, n_t] (row i·N_noise + j is noisy copy
    j of sample i) and ``targets`` [N, N_E] are float32 tensors on the training device."""
    path: Path
    inputs: torch.Tensor
    targets: torch.Tensor
    n_samples: int
    n_noise: int
    mu: np.ndarray
    gamma: np.ndarray
    t: np.ndarray
    energies: np.ndarray
    nb: int
    nrho: int
    clean: np.ndarray | None = None          # float64 [N, n_t], for fresh noise
    noise: NoiseModel | None = None


def load_training_data(cfg, ensemble: str, sigma_gev: float, device, fresh_noise: bool = False) -> TrainingData:
    """Read and check the training file of ``ensemble`` (SPEC §10) for the target of σ."""
    nb, nrho = cfg["ensembles"][ensemble]["nb"], cfg["ensembles"][ensemble]["nrho"]
    path = cfg.training_file(nb, nrho)
    what = (f"training file of ensemble {ensemble} (N_b={nb}, N_rho={nrho}); make it with "
            f"`python generate_full_dataset_sigma.py --preset {cfg.preset} --nb {nb} --root {cfg.root}`")
    with open_h5(path, what) as h5:
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
            raise InputError(path, "energies", f"{len(energies)} energies; expected the preset's grid of {len(cfg.energies)}")
        noisy = read_dataset(h5, "standardized_noisy_correlators", (None, None, n_t), np.float32)
        n_samples, n_noise = noisy.shape[:2]
        if n_samples != nrho:
            raise InputError(path, "standardized_noisy_correlators", f"{n_samples} samples; expected N_rho={nrho}")
        targets = read_dataset(h5, key, (n_samples, len(energies)))
        mu = read_dataset(h5, "mu_vector", (n_t,))
        gamma = read_dataset(h5, "gamma_vector", (n_t,))
        clean = noise = None
        if fresh_noise:
            clean = read_dataset(h5, "clean_correlators", (n_samples, n_t))
            mean = read_dataset(h5, "noise_mean", (n_t,))
            cov = read_dataset(h5, "noise_cov", (n_t, n_t))
            chol = covariance_cholesky(cov, path, "noise_cov")
            noise = NoiseModel(mean, cov, t.copy(), chol, "training file", str(path))
            stored_scale = read_dataset(h5, "noise_scale", (n_samples,))
            if not np.allclose(noise_scale(clean, noise), stored_scale, rtol=1e-10):
                raise InputError(path, "noise_scale", "disagrees with clean_correlators[:, 0] / noise_mean[0] (SPEC §4)")
    return TrainingData(path=path,
                        inputs=torch.from_numpy(noisy.reshape(n_samples * n_noise, n_t)).to(device),
                        targets=torch.from_numpy(targets.astype(np.float32)).to(device),
                        n_samples=n_samples, n_noise=n_noise, mu=mu, gamma=gamma, t=t,
                        energies=energies, nb=nb, nrho=nrho, clean=clean, noise=noise)


# --- one replica's streams -------------------------------------------------------------------------
def _keys(ensemble: str, sigma_gev: float, replica: int) -> tuple[int, int, int]:
    return zlib.crc32(ensemble.encode()), sigma_tag(sigma_gev), int(replica)


def split_samples(cfg, ensemble: str, sigma_gev: float, replica: int, n_samples: int):
    """(train, validation) indices of the clean samples: a random val_fraction held out (SPEC §6)."""
    perm = rng_for(cfg, "split", *_keys(ensemble, sigma_gev, replica)).permutation(n_samples)
    n_val = int(round(cfg["val_fraction"] * n_samples))
    if n_val < 1 or n_val >= n_samples:
        raise ConfigError(f"val_fraction={cfg['val_fraction']} of {n_samples} samples leaves an empty side")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def noisy_items(samples: np.ndarray, n_noise: int) -> np.ndarray:
    """Rows of TrainingData.inputs holding the noisy copies of ``samples``."""
    return (samples[:, None] * n_noise + np.arange(n_noise)).ravel()


def initial_model(cfg, arch: str, ensemble: str, sigma_gev: float, replica: int, n_t: int, n_out: int) -> SpectralNet:
    seed = int(rng_for(cfg, "init", *_keys(ensemble, sigma_gev, replica)).integers(2**62))
    return build_model(arch, n_t, n_out, cfg["weight_std"], cfg["leaky_slope"],
                       torch.Generator().manual_seed(seed))


def lr_factor(cfg, epoch_index: int) -> float:
    """f(e) of the module docstring (SPEC §6), e = 0-based epoch index."""
    start = cfg["lr_decay_start"]
    if epoch_index < start:
        return 1.0
    return 1.0 / (1.0 + (epoch_index - (start - 1)) * cfg["lr_decay_rate"])


# --- the resumable state of one replica ---------------------------------------------------------------
TRAINING_KEYS = ("kernel", "T", "t_min", "t_max", "a_inv_gev", "energy_min_gev", "energy_max_gev",
                 "n_energies", "E0_min", "E0_max", "epsilon", "noise_file", "n_noise", "seed", "rng_block",
                 "leaky_slope", "weight_std", "lr", "batch_size", "lr_decay_start", "lr_decay_rate",
                 "max_epochs", "patience", "min_delta", "val_fraction")


def identity(cfg, arch, ensemble, sigma_gev, replica, noise_mode) -> dict:
    """What a saved state must have been started with to be continued: the run, and the preset
    values that shape the training data or the training (not, e.g., the prediction's n_boot)."""
    values = {k: cfg[k] for k in TRAINING_KEYS}
    values["ensemble"] = cfg["ensembles"][ensemble]
    return {"arch": arch, "ensemble": ensemble, "sigma_gev": float(sigma_gev), "replica": int(replica),
            "noise": noise_mode, "values": json.dumps(values, sort_keys=True)}


def state_path(cfg, sigma_gev, ensemble, replica) -> Path:
    return cfg.model_dir(sigma_gev, ensemble) / f"replica_{replica}_state.pth"


def history_path(cfg, sigma_gev, ensemble, replica) -> Path:
    return cfg.model_dir(sigma_gev, ensemble) / f"replica_{replica}_best_history.csv"


def new_state(ident: dict, model: SpectralNet) -> dict:
    return {"format": STATE_FORMAT, "identity": ident, "model": model.state_dict(), "adam": None,
            "epoch": 0, "step": 0, "loss_sum": 0.0, "history": [],
            "best_val": math.inf, "best_epoch": 0, "bad_epochs": 0, "finished": False, "stop_reason": ""}


def load_state(path: Path, ident: dict) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(path, None, f"not a readable training state ({type(err).__name__}: {err}); "
                         "delete it to start this replica afresh") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise InputError(path, "format", f"expected a training state of format {STATE_FORMAT!r}")
    saved = state["identity"]
    for key in ("arch", "ensemble", "sigma_gev", "replica", "noise"):
        if saved[key] != ident[key]:
            raise InputError(path, key, f"saved by a run with {key}={saved[key]!r}, this run has {ident[key]!r} "
                             "(another architecture or setting); delete it to start afresh")
    if saved["values"] != ident["values"]:
        old, new = json.loads(saved["values"]), json.loads(ident["values"])
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differ)
        raise InputError(path, "identity", f"saved with other preset values ({detail}); run with the "
                         "same settings to continue, or delete it to start afresh")
    return state


def save_state(path: Path, state: dict) -> None:
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def write_history(path: Path, history) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", "train_loss", "val_loss", "lr"])
    writer.writerows(history)
    with atomic_output(path) as tmp:
        tmp.write_text(text.getvalue())


# --- the batched group ------------------------------------------------------------------------------
class ReplicaGroup:
    """The active replicas of one (ensemble, σ) as one stacked model with one Adam."""

    def __init__(self, replicas: list[int], states: dict, arch: str, n_t: int, n_out: int,
                 leaky_slope: float, lr: float, device):
        self.replicas = list(replicas)
        models = []
        for r in self.replicas:
            model = SpectralNet(arch, n_t, n_out, leaky_slope)
            model.load_state_dict(states[r]["model"])
            models.append(model.to(device))
        self.stack = StackedReplicas(models)
        self.names = list(self.stack.params)
        # fused: one pass over the stacked tensors (CPU and CUDA); measured ~2x faster than the
        # default per-tensor loop for 5 stacked arcL replicas
        self.optimizer = torch.optim.Adam(list(self.stack.params.values()), lr=lr, fused=True)
        adam = [states[r]["adam"] for r in self.replicas]
        if adam[0] is not None:
            for name in self.names:
                p = self.stack.params[name]
                self.optimizer.state[p] = {
                    "step": torch.tensor(float(adam[0]["step"]), dtype=torch.float32, device=device),
                    "exp_avg": torch.stack([a["exp_avg"][name] for a in adam]).to(device),
                    "exp_avg_sq": torch.stack([a["exp_avg_sq"][name] for a in adam]).to(device)}

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One Adam step of every replica on its own batch: x [N_r, B, n_t], y [N_r, B, N_E];
        returns the per-replica L1 losses (detached)."""
        loss = (self.stack.forward_each(x) - y).abs().mean(dim=(1, 2))
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()          # replicas share no parameters: each gets its own gradient
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def l1_losses(self, inputs, targets, items: torch.Tensor, n_noise: int, chunk: int = 8192) -> np.ndarray:
        """Mean L1 loss of each replica on its rows ``items`` [N_r, M] of ``inputs``."""
        total = torch.zeros(len(self.replicas), dtype=torch.float64, device=items.device)
        for i in range(0, items.shape[1], chunk):
            idx = items[:, i:i + chunk]
            err = (self.stack.forward_each(inputs[idx]) - targets[idx // n_noise]).abs()
            total += err.sum(dim=(1, 2)).double()
        return (total / (items.shape[1] * targets.shape[1])).cpu().numpy()

    def export(self, position: int) -> tuple[dict, dict]:
        """(model state_dict, Adam state) of the replica at ``position`` of the stack, on the CPU."""
        model = {n: self.stack.params[n][position].detach().cpu().clone() for n in self.names}
        model.update({n: b[position].detach().cpu().clone() for n, b in self.stack.buffers.items()})
        first = self.optimizer.state.get(self.stack.params[self.names[0]])
        if not first:
            return model, None
        adam = {"step": int(first["step"].item()), "exp_avg": {}, "exp_avg_sq": {}}
        for n in self.names:
            st = self.optimizer.state[self.stack.params[n]]
            adam["exp_avg"][n] = st["exp_avg"][position].detach().cpu().clone()
            adam["exp_avg_sq"][n] = st["exp_avg_sq"][position].detach().cpu().clone()
        return model, adam

    def model(self, position: int) -> SpectralNet:
        return self.stack.unstack()[position]


# --- the training loop --------------------------------------------------------------------------------
def train_replicas(cfg, ensemble: str, sigma_gev, replicas: list[int], noise_mode: str = "stored",
                   device=None, stop=None, log=print) -> dict[int, str]:
    """Train (or continue, or skip when finished) ``replicas`` of one ensemble and σ together.

    Returns {replica: 'finished' | 'already finished' | 'preempted'}.  ``stop`` is an object whose
    ``requested`` attribute is polled after every step (``Preemption`` in the worker).
    """
    ensemble, sigma_gev, replicas = check_run(cfg, ensemble, sigma_gev, replicas)
    if noise_mode not in NOISE_MODES:
        raise ConfigError(f"noise {noise_mode!r}: expected one of {NOISE_MODES}")
    device = torch.device(device) if device is not None else select_device()
    stop = stop or NeverStop()
    # Adam's second moments of tiny gradients become denormal floats (< 1e-38), whose arithmetic
    # made CPU steps up to ~10x slower here; flushing them to zero changes nothing measurable.
    torch.set_flush_denormal(True)
    arch = cfg["ensembles"][ensemble]["arch"]
    status: dict[int, str] = {}
    states: dict[int, dict] = {}
    for r in replicas:
        ident = identity(cfg, arch, ensemble, sigma_gev, r, noise_mode)
        path = state_path(cfg, sigma_gev, ensemble, r)
        if path.exists():
            states[r] = load_state(path, ident)
            if states[r]["finished"]:
                s = states[r]
                log(f"{ensemble} sigma={sigma_gev} replica {r}: already finished ({s['stop_reason']}; best "
                    f"val loss {s['best_val']:.6g} at epoch {s['best_epoch']}); nothing to do")
                status[r] = "already finished"
                del states[r]
    if len(status) == len(replicas):
        return status
    data = load_training_data(cfg, ensemble, sigma_gev, device, fresh_noise=noise_mode == "fresh")
    n_t, n_out = len(data.t), len(data.energies)
    for r in replicas:
        if r not in states and r not in status:
            states[r] = new_state(identity(cfg, arch, ensemble, sigma_gev, r, noise_mode),
                                  initial_model(cfg, arch, ensemble, sigma_gev, r, n_t, n_out))
    active = sorted(states)
    positions = {r: (states[r]["epoch"], states[r]["step"]) for r in active}
    if len(set(positions.values())) > 1:
        where = ", ".join(f"replica {r} at epoch {e} step {k}" for r, (e, k) in positions.items())
        raise ConfigError(f"{ensemble} sigma={sigma_gev}: saved states are at different points ({where}); "
                          "continue them separately (--replica R) or with the grouping that saved them")
    for r in active:
        if states[r]["epoch"] or states[r]["step"]:
            log(f"{ensemble} sigma={sigma_gev} replica {r}: continuing at epoch {states[r]['epoch'] + 1}, "
                f"step {states[r]['step']}")

    splits = {r: split_samples(cfg, ensemble, sigma_gev, r, data.n_samples) for r in active}
    val_items = {r: torch.as_tensor(noisy_items(splits[r][1], data.n_noise), device=device) for r in active}
    train_items = {r: noisy_items(splits[r][0], data.n_noise) for r in active}
    n_items = len(train_items[active[0]])
    batch = cfg["batch_size"]
    n_steps = -(-n_items // batch)
    group = ReplicaGroup(active, states, arch, n_t, n_out, cfg["leaky_slope"], cfg["lr"], device)
    meta = dict(mu=data.mu, gamma=data.gamma, t=data.t, kernel=cfg["kernel"], T=cfg["T"],
                sigma_gev=float(sigma_gev), sigma=cfg.sigma(sigma_gev), energies=data.energies,
                config=cfg.to_json(), ensemble=ensemble, nb=data.nb, nrho=data.nrho, noise=noise_mode,
                n_train_samples=len(splits[active[0]][0]), n_val_samples=len(splits[active[0]][1]))
    run_provenance = provenance(cfg, training_file=str(data.path), ensemble=ensemble,
                                sigma_gev=float(sigma_gev), arch=arch, noise=noise_mode)
    log(f"{ensemble} sigma={sigma_gev}: {arch}, replicas {active} batched on {device}, "
        f"{data.n_samples} samples x {data.n_noise} noisy copies ({noise_mode} noise), "
        f"{n_items} training items per epoch, {n_steps} steps of {batch}")

    def save_all():
        for pos, r in enumerate(group.replicas):
            states[r]["model"], states[r]["adam"] = group.export(pos)
            save_state(state_path(cfg, sigma_gev, ensemble, r), states[r])

    while group is not None:
        epoch, start = states[group.replicas[0]]["epoch"], states[group.replicas[0]]["step"]
        lr = cfg["lr"] * lr_factor(cfg, epoch)
        group.set_lr(lr)
        order = np.stack([train_items[r][rng_for(cfg, "order", *_keys(ensemble, sigma_gev, r), epoch)
                                         .permutation(n_items)] for r in group.replicas])
        order = torch.as_tensor(order, device=device)
        loss_sum = torch.tensor([states[r]["loss_sum"] for r in group.replicas], dtype=torch.float64, device=device)
        fresh = None
        bar = tqdm(range(start, n_steps), desc=f"{ensemble} σ={sigma_gev} epoch {epoch + 1}", leave=False,
                   mininterval=10, disable=None)
        for k in bar:
            idx = order[:, k * batch:(k + 1) * batch]
            if noise_mode == "fresh":
                block, offset = divmod(k, FRESH_BLOCK_STEPS)
                if offset == 0 or fresh is None:
                    fresh = _fresh_block(cfg, data, ensemble, sigma_gev, group.replicas, order, epoch, block, device)
                x = fresh[:, offset * batch:offset * batch + idx.shape[1]]
            else:
                x = data.inputs[idx]
            loss_sum += group.step(x, data.targets[idx // data.n_noise]).double() * idx.shape[1]
            if stop.requested:
                for pos, r in enumerate(group.replicas):
                    states[r].update(step=k + 1, loss_sum=float(loss_sum[pos]))
                save_all()
                log(f"{ensemble} sigma={sigma_gev}: stopped at epoch {epoch + 1} step {k + 1}/{n_steps}; "
                    "state saved, run again with the same arguments to continue")
                return {**status, **{r: "preempted" for r in group.replicas}}
        bar.close()
        train_loss = (loss_sum / n_items).cpu().numpy()
        val_items_now = torch.stack([val_items[r] for r in group.replicas])
        val_loss = group.l1_losses(data.inputs, data.targets, val_items_now, data.n_noise)
        line = [f"epoch {epoch + 1} lr {lr:.4g}"]
        stopped = []
        for pos, r in enumerate(group.replicas):
            s = states[r]
            s["history"].append([epoch + 1, float(train_loss[pos]), float(val_loss[pos]), lr])
            s.update(epoch=epoch + 1, step=0, loss_sum=0.0)
            improved = val_loss[pos] < s["best_val"] - cfg["min_delta"]
            if improved:
                s.update(best_val=float(val_loss[pos]), best_epoch=epoch + 1, bad_epochs=0)
                save_checkpoint(cfg.checkpoint(sigma_gev, ensemble, r), group.model(pos),
                                **meta, replica=r, epoch=epoch + 1, best_val_loss=float(val_loss[pos]),
                                provenance={**run_provenance, "replica": r})
            else:
                s["bad_epochs"] += 1
            if s["bad_epochs"] >= cfg["patience"]:
                s.update(finished=True, stop_reason=f"early stopping after {s['bad_epochs']} epochs without improvement")
            elif epoch + 1 >= cfg["max_epochs"]:
                s.update(finished=True, stop_reason=f"max_epochs={cfg['max_epochs']} reached")
            write_history(history_path(cfg, sigma_gev, ensemble, r), s["history"])
            line.append(f"r{r} train {train_loss[pos]:.5f} val {val_loss[pos]:.5f}{'*' if improved else ''}")
            if s["finished"]:
                stopped.append(r)
        save_all()
        log(" | ".join(line))
        for r in stopped:
            s = states[r]
            log(f"{ensemble} sigma={sigma_gev} replica {r}: finished, {s['stop_reason']}; best val loss "
                f"{s['best_val']:.6g} at epoch {s['best_epoch']} -> {cfg.checkpoint(sigma_gev, ensemble, r)}")
            status[r] = "finished"
        if stopped:
            remaining = [r for r in group.replicas if r not in stopped]
            group = (ReplicaGroup(remaining, states, arch, n_t, n_out, cfg["leaky_slope"], cfg["lr"], device)
                     if remaining else None)
        if stop.requested and group is not None:
            log(f"{ensemble} sigma={sigma_gev}: stopped after epoch {epoch + 1}; state saved, run again to continue")
            return {**status, **{r: "preempted" for r in group.replicas}}
    return status


def _fresh_block(cfg, data: TrainingData, ensemble, sigma_gev, replicas, order, epoch, block, device):
    """Standardised inputs with newly drawn noise for FRESH_BLOCK_STEPS steps of every replica.

    Item rows of ``order`` name (sample, copy); with fresh noise the copy index only counts how
    often a sample is seen per epoch, and each occurrence gets its own z (SPEC §4: C + s L z).
    """
    batch = cfg["batch_size"]
    lo, hi = block * FRESH_BLOCK_STEPS * batch, (block + 1) * FRESH_BLOCK_STEPS * batch
    samples = (order[:, lo:hi] // data.n_noise).cpu().numpy()
    out = []
    for pos, r in enumerate(replicas):
        rng = rng_for(cfg, "fresh-noise", *_keys(ensemble, sigma_gev, r), epoch, block)
        noisy = add_noise(data.clean[samples[pos]], data.noise, rng, 1)[:, 0, :]
        out.append(standardise(noisy, data.mu, data.gamma))
    return torch.as_tensor(np.stack(out), device=device)

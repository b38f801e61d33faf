"""The training loop (method §5-7): the replicas of one ensemble and σ, the logic behind
hpc_train_sigma.py.

    resume or start every replica; while replicas run: run an epoch, end the epoch;
    on a stop request: save every state and return (the one preemption exit).

What one replica does (method §6):
- its own random streams (replica_streams.py): initialisation, the 80/20 split of the clean
  samples, the order of every epoch and, per the preset's ``noise``, the noise it trains on.
- an epoch is one pass, in a fresh random order, over the N_noise noisy copies of each training
  sample, in batches of ``batch_size`` (32); the last batch may be smaller.  The batch is a slice
  of an index permutation applied to tensors already in memory (on the GPU if there is one).
- Adam (torch.optim.Adam, default betas/eps), L1 loss (mean |ŷ − ρ_σ| over the batch and the N_E
  energies), learning rate lr·f(e) with the epoch index e = 0, 1, 2, ... (replica_group.lr_factor;
  the history's ``epoch`` column is e + 1, the number of epochs completed).
- after each epoch: the L1 loss on all noisy copies of the held-out samples.  It is an improvement
  when it is below best − min_delta; the best network is then kept in the replica's state and
  written as the self-contained checkpoint replica_{r}_best.pth (checkpoints.py).  Training stops
  after ``patience`` epochs without improvement or after ``max_epochs``.  The history (epoch,
  train_loss, val_loss, lr) is rewritten beside the checkpoint as replica_{r}_best_history.csv
  after every epoch.
- a resumable state replica_{r}_state.pth (checkpoints.ReplicaState) is saved at every epoch end
  and when a stop is requested (SIGTERM/SIGUSR1, training_runs.Preemption); the states of the
  group are saved as one unit, all or none (checkpoints.save_states), and the checkpoint and
  history are written after them.  Started again with the same settings, training continues from
  there, first writing again a best checkpoint or history that is not what the state holds (lost,
  or a kill between the writes); a finished replica is reported and skipped.

The interval networks (interval_networks.py; the training run roles.INTERVAL_RUN) are trained by
this same loop, with the pinball loss of three quantiles in place of L1 and 3·N_E outputs
(replica_group.Objective); everything else is as above.

The replicas of a group are trained as one batched model (replica_group.ReplicaGroup) and
advance in lock-step (same epoch and step); a replica that stops is removed from the stack, the
others go on.  Its history equals that of a separate run up to float round-off
(tests/test_training.py).  Inside the step loop nothing is read back from the device: the
losses are summed on the device and read once per epoch.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from checkpoints import (
    ReplicaState,
    checkpoint_problem,
    checkpoint_record,
    history_differs,
    identity,
    load_state,
    save_states,
    write_checkpoint_record,
    write_history,
)
from config import ConfigError, load_config
from devices import select_device, to_device
from interval_networks import objective
from io_utils import provenance
from replica_group import ReplicaGroup, lr_factor
from replica_streams import epoch_order, initial_model, noise_source_class, noisy_items, split_samples
from tasks import training_runs_table
from training_runs import NeverStop, check_run, replica_locks
from training_sets import load_training_data


def train_replicas(cfg, ensemble: str, sigma_gev, replicas: list[int], noise: str | None = None,
                   device=None, stop=None, log=print, wait_lock: bool = False) -> dict[int, str]:
    """Train (or continue, or skip when finished) ``replicas`` of one ensemble and σ together,
    holding their locks (training_runs.replica_locks: another run on them stops at once with
    io_utils.TaskLocked, or with ``wait_lock`` waits for it).  A best checkpoint that is missing,
    unreadable or not the state's best network is written again from the state, byte for byte.

    ``noise`` overrides the preset's noise mode (settings.NOISE_MODES), as ``--set noise=...`` would:
    the configuration recorded in the checkpoints says which one was used.
    Returns {replica: 'finished' | 'already finished' | 'preempted'}.  ``stop`` is an object whose
    ``requested`` attribute is polled after every step (``Preemption`` in the worker).
    """
    if noise is not None and noise != cfg["noise"]:
        cfg = load_config(cfg.preset, [*cfg.overrides, f"noise={noise}"], cfg.root)
    ensemble, sigma_gev, replicas = check_run(cfg, ensemble, sigma_gev, replicas)
    with replica_locks(cfg, ensemble, sigma_gev, replicas, wait_lock, log):
        return _train_replicas(cfg, ensemble, sigma_gev, replicas, device, stop, log)


def _train_replicas(cfg, ensemble, sigma_gev, replicas, device, stop, log) -> dict[int, str]:
    device = select_device(device, cfg["tf32"])
    stop = stop or NeverStop()
    # Adam's second moments of tiny gradients become denormal floats (< 1e-38), whose arithmetic
    # made CPU steps up to ~10x slower here; flushing them to zero changes nothing measurable.
    torch.set_flush_denormal(True)
    run = Run(cfg, ensemble, sigma_gev, cfg["noise"], device, log)
    if not run.resume_or_start(replicas):
        return run.status
    while run.group is not None:
        if run.run_epoch(stop):
            run.end_epoch()
        if stop.requested and run.group is not None:
            return run.stop_here()
    return run.status


class Run:
    """One (ensemble, σ) being trained: its data, noise source, the replicas' states and group."""

    def __init__(self, cfg, ensemble: str, sigma_gev: float, noise: str, device, log):
        self.cfg, self.ensemble, self.sigma_gev, self.noise_mode = cfg, ensemble, sigma_gev, noise
        self.device, self.log = device, log
        self.arch = training_runs_table(cfg)[ensemble]["arch"]
        self.objective = objective(ensemble)          # L1, or the interval networks' pinball loss
        self.where = f"{ensemble} sigma={sigma_gev}"
        self.status: dict[int, str] = {}
        self.states: dict[int, ReplicaState] = {}
        self.group: ReplicaGroup | None = None

    def identity(self, r: int) -> dict:
        return identity(self.cfg, self.arch, self.ensemble, self.sigma_gev, r, self.noise_mode)

    # --- resume or start ------------------------------------------------------------------------
    def resume_or_start(self, replicas: list[int]) -> bool:
        """Load the saved states and start the other replicas; False if every one had finished."""
        cfg, ensemble, sigma_gev = self.cfg, self.ensemble, self.sigma_gev
        for r in replicas:
            path = cfg.state_path(sigma_gev, ensemble, r)
            if path.exists():
                s = load_state(path, self.identity(r))
                self.export_files(r, s)
                if not s.finished:
                    self.states[r] = s
                    continue
                self.log(f"{self.where} replica {r}: already finished ({s.stop_reason}; best val loss "
                         f"{s.best_val:.6g} at epoch {s.best_epoch}); nothing to do")
                self.status[r] = "already finished"
        active = [r for r in replicas if r not in self.status]
        if not active:
            return False
        source = noise_source_class(self.noise_mode)
        data = load_training_data(cfg, ensemble, sigma_gev, noisy=source.needs_stored,
                                  clean=source.needs_clean)
        self.n_t, self.n_out = len(data.t), self.objective.width * len(data.energies)
        for r in active:
            if r not in self.states:
                model = initial_model(cfg, self.arch, ensemble, sigma_gev, r, self.n_t, self.n_out)
                self.states[r] = ReplicaState(self.identity(r), model.state_dict())
        positions = {r: (self.states[r].epoch, self.states[r].step) for r in active}
        if len(set(positions.values())) > 1:
            where = ", ".join(f"replica {r} at epoch {e} step {k}" for r, (e, k) in positions.items())
            raise ConfigError(f"{self.where}: saved states are at different points ({where}); continue "
                              "them separately (--replica R) or with the grouping that saved them")
        for r in active:
            if self.states[r].epoch or self.states[r].step:
                self.log(f"{self.where} replica {r}: continuing at epoch {self.states[r].epoch + 1}, "
                         f"step {self.states[r].step}")

        device = self.device
        splits = {r: split_samples(cfg, ensemble, sigma_gev, r, data.n_samples) for r in active}
        self.train_items = {r: noisy_items(splits[r][0], data.n_noise) for r in active}
        self.val_items = {r: torch.as_tensor(noisy_items(splits[r][1], data.n_noise), device=device)
                          for r in active}
        self.n_items = len(self.train_items[active[0]])
        self.n_steps = -(-self.n_items // cfg["batch_size"])
        self.n_noise = data.n_noise
        self.targets = torch.from_numpy(data.targets).to(device)
        self.noise = source(cfg, data, ensemble, sigma_gev, active, device)
        self.meta = dict(mu=data.mu, gamma=data.gamma, t=data.t, kernel=cfg["kernel"], T=cfg["T"],
                         sigma_gev=float(sigma_gev), sigma=cfg.sigma(sigma_gev), energies=data.energies,
                         config=cfg.to_json(), ensemble=ensemble, nb=data.nb, nrho=data.nrho,
                         noise=self.noise_mode, n_train_samples=len(splits[active[0]][0]),
                         n_val_samples=len(splits[active[0]][1]), **self.objective.meta)
        self.provenance = provenance(cfg, training_file=str(data.path), ensemble=ensemble,
                                     sigma_gev=float(sigma_gev), arch=self.arch, noise=self.noise_mode)
        self.group = self._group(active)
        self.log(f"{self.where}: {self.arch}, replicas {active} batched on {device}, "
                 f"{data.n_samples} samples x {data.n_noise} noisy copies ({self.noise_mode} noise), "
                 f"{self.n_items} training items per epoch, {self.n_steps} steps of {cfg['batch_size']}")
        return True

    def _group(self, replicas: list[int]) -> ReplicaGroup | None:
        if not replicas:
            return None
        return ReplicaGroup(replicas, [self.states[r].model for r in replicas],
                            [self.states[r].adam for r in replicas], self.arch, self.n_t, self.n_out,
                            self.cfg["leaky_slope"], self.cfg["lr"], self.device, self.objective.loss)

    # --- one epoch ------------------------------------------------------------------------------
    def run_epoch(self, stop) -> bool:
        """The remaining steps of the current epoch; False if a stop was requested before its end
        (the states then hold the step reached and the running loss)."""
        cfg, group, replicas = self.cfg, self.group, self.group.replicas
        epoch, start = self.states[replicas[0]].epoch, self.states[replicas[0]].step
        group.set_lr(cfg["lr"] * lr_factor(cfg, epoch))
        # Nothing in the step loop makes the host wait for the device (no .item(), .cpu(), float()
        # of a device tensor, no copy from pageable memory; tests/test_gpu_path.py counts them):
        # the losses are summed on the device and read once, in end_epoch.
        order_host = np.empty((len(replicas), self.n_items), dtype=np.int64)
        for pos, r in enumerate(replicas):
            order_host[pos] = epoch_order(cfg, self.ensemble, self.sigma_gev, r, epoch, self.train_items[r])
        order = to_device(order_host, self.device)
        self.loss_sum = torch.tensor([self.states[r].loss_sum for r in replicas], dtype=torch.float64,
                                     device=self.device)
        bar = tqdm(range(start, self.n_steps), desc=f"{self.ensemble} σ={self.sigma_gev} epoch {epoch + 1}",
                   leave=False, mininterval=10, disable=None)
        for k in bar:
            x = self.noise.batch(replicas, order, order_host, epoch, k)
            idx = order[:, k * cfg["batch_size"]:(k + 1) * cfg["batch_size"]]
            self.loss_sum += group.step(x, self.targets[idx // self.n_noise]).double() * idx.shape[1]
            if stop.requested:
                for pos, r in enumerate(replicas):
                    self.states[r].step, self.states[r].loss_sum = k + 1, float(self.loss_sum[pos])
                return False
        bar.close()
        return True

    def end_epoch(self) -> None:
        """Validation, checkpoint of improved replicas, early stopping, history and states."""
        cfg, group, replicas = self.cfg, self.group, self.group.replicas
        epoch = self.states[replicas[0]].epoch
        lr = cfg["lr"] * lr_factor(cfg, epoch)
        train_loss = (self.loss_sum / self.n_items).cpu().numpy()
        val_items = torch.stack([self.val_items[r] for r in replicas])
        val_loss = group.mean_losses(lambda idx: self.noise.rows(replicas, idx), self.targets,
                                   val_items, self.n_noise)
        line = [f"epoch {epoch + 1} lr {lr:.4g}"]
        for pos, r in enumerate(replicas):
            s = self.states[r]
            s.history.append([epoch + 1, float(train_loss[pos]), float(val_loss[pos]), lr])
            s.epoch, s.step, s.loss_sum = epoch + 1, 0, 0.0
            improved = val_loss[pos] < s.best_val - cfg["min_delta"]
            if improved:
                s.best_val, s.best_epoch, s.bad_epochs = float(val_loss[pos]), epoch + 1, 0
                s.best = checkpoint_record(group.model(pos), **self.meta, replica=r, epoch=epoch + 1,
                                           best_val_loss=s.best_val, provenance={**self.provenance, "replica": r})
            else:
                s.bad_epochs += 1
            if s.bad_epochs >= cfg["patience"]:
                s.finished = True
                s.stop_reason = f"early stopping after {s.bad_epochs} epochs without improvement"
            elif epoch + 1 >= cfg["max_epochs"]:
                s.finished, s.stop_reason = True, f"max_epochs={cfg['max_epochs']} reached"
            line.append(f"r{r} train {train_loss[pos]:.5f} val {val_loss[pos]:.5f}{'*' if improved else ''}")
        self.save_states()
        for r in replicas:          # the files derived from the saved states, written after them
            if self.states[r].best_epoch == epoch + 1:
                write_checkpoint_record(cfg.checkpoint(self.sigma_gev, self.ensemble, r), self.states[r].best)
            write_history(cfg.history_path(self.sigma_gev, self.ensemble, r), self.states[r].history)
        self.log(" | ".join(line))
        stopped = [r for r in replicas if self.states[r].finished]
        for r in stopped:
            s = self.states[r]
            self.log(f"{self.where} replica {r}: finished, {s.stop_reason}; best val loss {s.best_val:.6g} "
                     f"at epoch {s.best_epoch} -> {cfg.checkpoint(self.sigma_gev, self.ensemble, r)}")
            self.status[r] = "finished"
        if stopped:
            self.group = self._group([r for r in replicas if r not in stopped])

    # --- saving and stopping ----------------------------------------------------------------------
    def save_states(self) -> None:
        """The states of the group's replicas, saved as one unit (checkpoints.save_states)."""
        for pos, r in enumerate(self.group.replicas):
            self.states[r].model, self.states[r].adam = self.group.export(pos)
        save_states({self.cfg.state_path(self.sigma_gev, self.ensemble, r): self.states[r]
                     for r in self.group.replicas})

    def export_files(self, r: int, s: ReplicaState) -> None:
        """Write the best checkpoint and the history CSV from the saved state ``s`` where they are
        not what it holds (lost, damaged, or a kill between the writes): the same bytes again."""
        path = self.cfg.checkpoint(self.sigma_gev, self.ensemble, r)
        problem = s.best is not None and checkpoint_problem(path, s.best)
        if problem:
            write_checkpoint_record(path, s.best)
            self.log(f"{self.where} replica {r}: its best checkpoint {path} was {problem}; "
                     f"written again from the saved state (the best network of epoch {s.best_epoch})")
        history = self.cfg.history_path(self.sigma_gev, self.ensemble, r)
        if history_differs(history, s.history):
            write_history(history, s.history)

    def stop_here(self) -> dict[int, str]:
        """The one preemption exit: save every active state, say where, report 'preempted'."""
        self.save_states()
        s = self.states[self.group.replicas[0]]
        at = (f"after epoch {s.epoch}" if s.step == 0 else
              f"at epoch {s.epoch + 1} step {s.step}/{self.n_steps}")
        self.log(f"{self.where}: stopped {at}; state saved, run again with the same arguments to continue")
        return {**self.status, **{r: "preempted" for r in self.group.replicas}}

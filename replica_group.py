"""The optimisation of a batch of replicas (method §6): the learning-rate schedule, the losses, and the
active replicas of one (ensemble, σ) as one stacked model with one Adam.

Several replicas in one process are trained as one batched model (``StackedReplicas``:
parameters stacked along a replica axis, each layer one batched matrix product; see
pytorch_models_t32.py).  Adam is element-wise, so one Adam over the stacked parameters is one
Adam per replica.  A replica that stops is removed by building a new group of the others.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from pytorch_models_t32 import SpectralNet, StackedReplicas


def lr_factor(cfg, epoch_index: int) -> float:
    """f(e) of method §6 for the 0-based epoch index e:
        f(e) = 1                                   for e < lr_decay_start (= 25)
        f(e) = 1 / (1 + (e − 24)·lr_decay_rate)    for e ≥ 25, with 24 = lr_decay_start − 1
    i.e. the first 25 epochs run at lr, the 26th at lr/(1 + 4e−4), the 200th at lr/(1 + 176·4e−4)."""
    start = cfg["lr_decay_start"]
    if epoch_index < start:
        return 1.0
    return 1.0 / (1.0 + (epoch_index - (start - 1)) * cfg["lr_decay_rate"])


def l1_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """|ŷ − ρ_σ| element by element: outputs and targets [..., N_E], the paper's loss."""
    return (outputs - targets).abs()


@dataclass(frozen=True)
class Objective:
    """What a network is trained for: ``loss(outputs [..., width·N_E], targets [..., N_E])`` gives the
    loss element by element [..., k], whose mean over the batch and the last axis is minimised and
    early-stopped on; ``meta`` is recorded in the checkpoints (nothing for the paper's networks)."""
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    width: int = 1
    meta: dict = field(default_factory=dict)


L1 = Objective(l1_loss)            # the audience's networks


class ReplicaGroup:
    """The active replicas of one (ensemble, σ) as one stacked model with one Adam.

    ``weights`` and ``adam`` hold, per replica, its state_dict and its Adam state (None before
    the first step, else {"step", "exp_avg": {name: tensor}, "exp_avg_sq": {...}}), as
    ``export`` gives them and checkpoints.ReplicaState stores them.  ``loss`` is the element-wise
    loss of an Objective (default: the paper's L1)."""

    def __init__(self, replicas: list[int], weights: list[dict], adam: list[dict | None], arch: str,
                 n_t: int, n_out: int, leaky_slope: float, lr: float, device, loss=l1_loss):
        self.replicas = list(replicas)
        self.loss = loss
        models = []
        for state_dict in weights:
            model = SpectralNet(arch, n_t, n_out, leaky_slope)
            model.load_state_dict(state_dict)
            models.append(model.to(device))
        self.stack = StackedReplicas(models)
        self.names = list(self.stack.params)
        # fused: one pass over the stacked tensors (CPU and CUDA); measured ~2x faster than the
        # default per-tensor loop for 5 stacked arcL replicas
        self.optimizer = torch.optim.Adam(list(self.stack.params.values()), lr=lr, fused=True)
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
        returns the per-replica mean losses (detached, on the device)."""
        loss = self.loss(self.stack.forward_each(x), y).mean(dim=(1, 2))
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()          # replicas share no parameters: each gets its own gradient
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def mean_losses(self, rows, targets, items: torch.Tensor, n_noise: int, chunk: int = 8192) -> np.ndarray:
        """Mean loss of each replica on its item rows ``items`` [N_r, M]; ``rows(idx)`` gives
        the inputs [N_r, m, n_t] of item rows idx [N_r, m] (a noise source's ``rows``)."""
        total = torch.zeros(len(self.replicas), dtype=torch.float64, device=items.device)
        for i in range(0, items.shape[1], chunk):
            idx = items[:, i:i + chunk]
            err = self.loss(self.stack.forward_each(rows(idx)), targets[idx // n_noise])
            total += err.sum(dim=(1, 2)).double()
        return (total / (items.shape[1] * err.shape[2])).cpu().numpy()

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

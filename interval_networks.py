"""The interval networks: the width of the posterior of ρ_σ(E) given the data (beyond the paper).

A network trained with the L1 loss estimates the posterior median of ρ_σ(E) given the noisy C(t);
the posterior's width -- what the noisy slices do not determine -- is in no term of σ_tot.  For each
replica r of Nmax, an interval network of Nmax's architecture has 3·N_E outputs, in this order:

    outputs[..., 0:N_E] = q_lo,   outputs[..., N_E:2N_E] = q_50,   outputs[..., 2N_E:3N_E] = q_hi

the quantiles at the levels τ = Φ(−1), 1/2, Φ(1) (QUANTILE_LEVELS; Φ the standard normal CDF, so
[q_lo, q_hi] is a 68.27 % interval; the levels, the layout and the networks' paths are in
interval_outputs.py, which needs no torch).  It is trained with the pinball loss

    L_τ(y, q) = max(τ (y − q), (τ − 1)(y − q)),

averaged over the batch, the energies and the three levels, whose minimiser over q is the
τ-quantile of y's law (tests/test_intervals.py checks this on a skewed law).  Everything else is
the replica's training (training.py): optimiser, learning-rate schedule, 80/20 split rule,
noise mode, early stopping -- on the held-out pinball loss.  It trains on the file of the
calibration space with Nmax's N_b and N_ρ (settings.CALIBRATION_SPACES maps the preset key
``calibration_space`` to it).  As a training run it is named roles.INTERVAL_RUN: its random
streams are keyed by that name, hence differ from Nmax's replica r and are fixed by the seed;
its files are trained_models_sigma{100σ}/Nmax/interval_{r}_best.pth (+ _best_history.csv,
_state.pth), self-contained checkpoints (checkpoints.py) that record the levels and the layout.

    models, metas = load_interval_networks(cfg, sigma_gev)          # one per replica of Nmax
    q_lo, q_50, q_hi = predict_quantiles(models, metas, C)          # C [N, n_t] -> each [N, N_r, N_E]
"""
from __future__ import annotations

import numpy as np
import torch

from checkpoints import load_replicas
from interval_outputs import LAYOUT, QUANTILE_LEVELS, interval_checkpoints, split_quantiles
from io_utils import InputError
from pytorch_models_t32 import predict_replicas
from replica_group import L1, Objective
from roles import INTERVAL_RUN
from sigma_model_utils import standardise


def pinball_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_τ(y, q) element by element for the three levels: outputs [..., 3·N_E] (LAYOUT), targets
    y [..., N_E] -> [..., 3·N_E] in the outputs' order."""
    u = targets.unsqueeze(-2) - outputs.unflatten(-1, (len(QUANTILE_LEVELS), -1))      # y − q
    parts = [torch.maximum(tau * u[..., j, :], (tau - 1.0) * u[..., j, :]) for j, tau in enumerate(QUANTILE_LEVELS)]
    return torch.cat(parts, dim=-1)


PINBALL = Objective(pinball_loss, width=len(QUANTILE_LEVELS),
                    meta={"loss": "pinball", "quantile_levels": list(QUANTILE_LEVELS), "output_layout": LAYOUT})


def objective(ensemble: str) -> Objective:
    """What a training run minimises: the pinball loss for the interval networks, else L1."""
    return PINBALL if ensemble == INTERVAL_RUN else L1


def load_interval_networks(cfg, sigma_gev: float, map_location="cpu"):
    """(models, metas) of the interval networks of σ, checked against the preset's geometry
    (checkpoints.load_replicas), to be networks of this layout and levels, and to have the
    preset's number of outputs; a missing or foreign file is an InputError naming it."""
    paths = interval_checkpoints(cfg, sigma_gev)
    models, metas = load_replicas(paths, map_location, cfg)
    for path, meta in zip(paths, metas):
        if meta.get("output_layout") != LAYOUT or meta.get("quantile_levels") != list(QUANTILE_LEVELS):
            raise InputError(path, "output_layout", f"{meta.get('output_layout')!r} at levels "
                             f"{meta.get('quantile_levels')}; expected an interval network ({LAYOUT} at "
                             f"{list(QUANTILE_LEVELS)})")
        if meta["n_out"] != len(QUANTILE_LEVELS) * cfg["n_energies"]:
            raise InputError(path, "n_out", f"{meta['n_out']} outputs; expected 3·N_E = "
                             f"{len(QUANTILE_LEVELS) * cfg['n_energies']}")
    return models, metas


def predict_quantiles(models, metas, correlators: np.ndarray):
    """(q_lo, q_50, q_hi), each a numpy array [N, N_r, N_E], of every interval network on the
    correlators [N, n_t] (not standardised: standardised here with the networks' own μ, γ)."""
    x = standardise(np.asarray(correlators, dtype=np.float64), metas[0]["mu"], metas[0]["gamma"])
    with torch.no_grad():
        outputs = predict_replicas(models, x).cpu().numpy().astype(np.float64)
    return split_quantiles(outputs)

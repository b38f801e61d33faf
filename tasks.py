"""The Slurm array index -> task maps, shared by the workers, the Slurm jobs (through
``python config.py ... array-size``) and the local runner: the only place they are defined.

Each takes a resolved configuration (config.Config).
"""
from __future__ import annotations

from settings import ConfigError


def ensemble_space(cfg, ensemble: str) -> str:
    """The training space of an ensemble: ``chebyshev`` (SPEC §3), or ``prior`` for Nref_prior."""
    return cfg["ensembles"][ensemble].get("space", "chebyshev")


def generation_tasks(cfg) -> list[tuple[str, int]]:
    """Slurm array index i of the generation stage -> the (space, N_b) it generates: one task per
    N_b of the Chebyshev space, then, with the prior systematic, one for the second space."""
    tasks = [("chebyshev", nb) for nb in cfg["nb_list"]]
    prior_nbs = sorted({ens["nb"] for ens in cfg["ensembles"].values() if ens.get("space") == "prior"})
    return tasks + [("prior", nb) for nb in prior_nbs]


def generated_nrhos(cfg, space: str) -> list[int]:
    """The N_ρ of the files a generation task writes: every nrho_list entry for the Chebyshev
    space, only what the ensembles use for the prior space (prefixes of one stream either way)."""
    if space == "chebyshev":
        return list(cfg["nrho_list"])
    return sorted({ens["nrho"] for ens in cfg["ensembles"].values() if ens.get("space") == space})


def training_tasks(cfg) -> list[tuple[str, int, float]]:
    """Slurm array index i of the training stage -> (ensemble, replica, σ).

    i = (σ_index · N_ensembles + ensemble_index) · N_r + replica, so the replicas of one
    (ensemble, σ) are a contiguous range of indices and can be trained in one batched process.
    """
    return [(ens, r, s) for s in cfg["sigmas_gev"] for ens in cfg["ensembles"]
            for r in range(cfg["n_replicas"])]


def training_groups(cfg) -> list[tuple[str, float, list[int]]]:
    """The (ensemble, σ) groups of training_tasks(), each with its task indices."""
    n_r = cfg["n_replicas"]
    tasks = training_tasks(cfg)
    return [(tasks[g * n_r][0], tasks[g * n_r][2], list(range(g * n_r, (g + 1) * n_r)))
            for g in range(len(tasks) // n_r)]


def parse_index_range(text: str) -> list[int]:
    """'3' -> [3]; '0-4' -> [0, 1, 2, 3, 4]; '0,2,5-6' -> [0, 2, 5, 6]."""
    out: list[int] = []
    for part in str(text).split(","):
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise ConfigError(f"cannot read index range {text!r}: expected e.g. 3, 0-4 or 0,2,5-6") from None
    return out

"""The Slurm array index -> task maps, shared by the workers, the Slurm jobs (through
``python config.py ... array-size``) and the local runner: the only place they are defined.

Each takes a resolved configuration (config.Config).
"""
from __future__ import annotations

from pathlib import Path

from roles import INTERVAL_RUN, REFERENCE, SYSTEMATICS
from settings import CALIBRATION_SPACES, ConfigError
from sigma_model_utils import SPACES


def training_runs_table(cfg) -> dict[str, dict]:
    """What is trained, name -> {arch, nb, nrho[, space]}: the ensembles, then with
    interval_networks the interval networks (INTERVAL_RUN: Nmax's arch, N_b and N_rho on the
    calibration space, ``calibration_space``)."""
    table = dict(cfg["ensembles"])
    if cfg["interval_networks"]:
        space = CALIBRATION_SPACES[cfg["calibration_space"]]
        table[INTERVAL_RUN] = dict(cfg["ensembles"][REFERENCE], **({"space": space} if space else {}))
    return table


def calibration_space(cfg) -> str:
    """The training space the calibration set is drawn from and the interval networks train on
    (settings.CALIBRATION_SPACES): the mixture, or Nmax's own space; ensemble_space(cfg,
    INTERVAL_RUN) with interval networks, and defined without them too (the validation family of
    that space needs it either way)."""
    return CALIBRATION_SPACES[cfg["calibration_space"]] or cfg["ensembles"][REFERENCE].get("space", "chebyshev")


def ensemble_space(cfg, ensemble: str) -> str:
    """The training space of an ensemble (or of INTERVAL_RUN): ``chebyshev`` (the paper's) unless the
    run names another (config.load_config writes the preset's ``space`` into every ensemble when
    it is not chebyshev, and Nref_prior's from ``prior_space``; training_runs_table the interval
    networks' from ``calibration_space``)."""
    return training_runs_table(cfg)[ensemble].get("space", "chebyshev")


def unmeasured_systematics(cfg) -> tuple[str, ...]:
    """The systematics Σ_X of the budget that this audience cannot measure: those whose reference
    ensemble Nref_X trains the same network on the same training file as Nmax, so that Δ_X would be
    the noise of the seeds alone, not the effect of X.  In the physical space P, which has no N_b,
    every N_b names the same file: Σ_b is not measured there (budget.error_budget reports it NaN and
    leaves it out of σ_tot, saying so).  In the mixture, Nref_b's file has N_b Chebyshev basis
    functions in its Chebyshev half, so Σ_b measures N_b there."""
    def trains_on(name):
        run = cfg["ensembles"][name]
        return run["arch"], cfg.training_file(run["nb"], run["nrho"], ensemble_space(cfg, name))
    return tuple(name for name, ref in SYSTEMATICS.items()
                 if ref in cfg["ensembles"] and trains_on(ref) == trains_on(REFERENCE))


def generation_tasks(cfg) -> list[tuple[str, int | None]]:
    """Slurm array index i of the generation stage -> the (space, N_b) it generates: with the
    paper's training space one task per N_b of the Chebyshev space, then one per N_b that the
    training runs of each other space use (one task without N_b for the physical space): the
    ensembles', and the interval networks' file of the calibration space."""
    runs = training_runs_table(cfg)
    tasks = [("chebyshev", nb) for nb in cfg["nb_list"]] if cfg["space"] == "chebyshev" else []
    for space in SPACES[1:]:
        nbs = sorted({run["nb"] for name, run in runs.items() if ensemble_space(cfg, name) == space})
        tasks += [(space, None)] if space == "physical" and nbs else [(space, nb) for nb in nbs]
    return tasks


def generated_nrhos(cfg, space: str) -> list[int]:
    """The N_ρ of the files a generation task writes: every nrho_list entry for the Chebyshev
    space, only what the training runs use for the others (prefixes of one stream either way)."""
    if space == "chebyshev":
        return list(cfg["nrho_list"])
    return sorted({run["nrho"] for name, run in training_runs_table(cfg).items() if ensemble_space(cfg, name) == space})


def training_tasks(cfg) -> list[tuple[str, int, float]]:
    """Slurm array index i of the training stage -> (ensemble, replica, σ).

    i = (σ_index · N_ensembles + ensemble_index) · N_r + replica, so the replicas of one
    (ensemble, σ) are a contiguous range of indices and can be trained in one batched process.
    With interval_networks, the interval networks (INTERVAL_RUN) follow, N_r per σ, so the
    ensembles' indices are the same with and without them.
    """
    tasks = [(ens, r, s) for s in cfg["sigmas_gev"] for ens in cfg["ensembles"]
             for r in range(cfg["n_replicas"])]
    if cfg["interval_networks"]:
        tasks += [(INTERVAL_RUN, r, s) for s in cfg["sigmas_gev"] for r in range(cfg["n_replicas"])]
    return tasks


def training_groups(cfg) -> list[tuple[str, float, list[int]]]:
    """The (ensemble, σ) groups of training_tasks(), each with its task indices."""
    n_r = cfg["n_replicas"]
    tasks = training_tasks(cfg)
    return [(tasks[g * n_r][0], tasks[g * n_r][2], list(range(g * n_r, (g + 1) * n_r)))
            for g in range(len(tasks) // n_r)]


def predicted_runs(cfg) -> list[str]:
    """What predicts every input (prediction.py): the ensembles, then with interval_networks the
    interval networks (INTERVAL_RUN, into a prediction file of their own: [N, N_r, 3·N_E])."""
    return list(cfg["ensembles"]) + ([INTERVAL_RUN] if cfg["interval_networks"] else [])


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


def training_command(cfg, checkpoint) -> str:
    """The command that trains the network at ``checkpoint`` (a replica of an ensemble or an
    interval network; run_pipeline.py for a path that is neither)."""
    for ensemble, replica, sigma in training_tasks(cfg):
        if Path(cfg.checkpoint(sigma, ensemble, replica)) == Path(checkpoint):
            return cfg.command("hpc_train_sigma.py", "--ensemble", ensemble, "--replica", replica, "--sigma", sigma)
    return cfg.command("run_pipeline.py")


def rewrite_remedy(cfg, checkpoint) -> str:
    """What to do about a missing or damaged best checkpoint: run its training, which writes a finished
    network's best checkpoint again from its saved state, byte for byte, without training (and trains
    a network that has none)."""
    return (f"run its training, which writes a finished network's best checkpoint again byte for byte from its "
            f"saved state: `{training_command(cfg, checkpoint)}`")

"""Which training runs a worker does, and how it is asked to stop (method §7, §10).

Slurm array indices map to (ensemble, σ, [replicas]) through tasks.training_tasks, the one
definition shared with the Slurm scripts and the local runner.  ``Preemption`` turns SIGTERM or
SIGUSR1 (what Slurm sends before a kill, or with --signal) into a flag the trainer polls after
every step; the worker then exits with EXIT_PREEMPTED.
"""
from __future__ import annotations

import contextlib
import math
import signal
import sys

from checkpoints import finish_saving_states
from io_utils import remove_stale_temporaries, task_lock
from settings import ConfigError
from tasks import parse_index_range, training_runs_table, training_tasks

EXIT_PREEMPTED = 75                # EX_TEMPFAIL: stopped on request, state saved, run again


@contextlib.contextmanager
def replica_locks(cfg, ensemble: str, sigma_gev: float, replicas: list[int], wait: bool = False, log=print):
    """Hold the lock of every replica for the block (in replica order, so two waiting runs cannot
    deadlock): one process trains a replica.  While held, a group save of states that a killed run
    left is completed or undone (checkpoints.finish_saving_states), and the temporaries that killed
    runs left beside the replica's own outputs (checkpoint, state, history) are removed."""
    with contextlib.ExitStack() as locks:
        for r in sorted(replicas):
            locks.enter_context(task_lock(cfg.replica_lock(sigma_gev, ensemble, r),
                                          f"the training of {ensemble} sigma={sigma_gev} replica {r}", wait, log))
        completed, removed = finish_saving_states([cfg.state_path(sigma_gev, ensemble, r) for r in replicas])
        if completed:
            log(f"{ensemble} sigma={sigma_gev}: completed the committed save of states of a killed run: "
                f"{', '.join(p.name for p in completed)}")
        if removed:
            log(f"{ensemble} sigma={sigma_gev}: removed the uncommitted save of states of a killed run: "
                f"{', '.join(p.name for p in removed)}")
        for r in sorted(replicas):
            outputs = [cfg.checkpoint(sigma_gev, ensemble, r), cfg.state_path(sigma_gev, ensemble, r),
                       cfg.history_path(sigma_gev, ensemble, r)]
            stale = remove_stale_temporaries(outputs)
            if stale:
                log(f"{ensemble} sigma={sigma_gev} replica {r}: removed {len(stale)} temporary file(s) "
                    f"of a killed run: {', '.join(p.name for p in stale)}")
        yield


class Preemption:
    """Context manager: SIGTERM or SIGUSR1 sets ``requested``; the trainer then saves its state
    after the current step and returns."""
    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._previous = {}

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name} received: saving the training state after this step",
              file=sys.stderr, flush=True)

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


def preset_sigma(cfg, sigma) -> float:
    """σ as written in the preset (so file keys and directory tags match), or a ConfigError."""
    for s in cfg["sigmas_gev"]:
        if math.isclose(float(s), float(sigma), rel_tol=1e-9):
            return s
    raise ConfigError(f"sigma {sigma}: not among the preset's sigmas_gev {cfg['sigmas_gev']}")


def runs_from_task_ids(cfg, text: str) -> list[tuple[str, float, list[int]]]:
    """Slurm array indices ('7', '0-4', '0,5-9') -> [(ensemble, σ, [replicas])].  Indices of one
    (ensemble, σ) are grouped so their replicas train as one batched model."""
    tasks = training_tasks(cfg)
    groups: dict[tuple[str, float], list[int]] = {}
    for i in parse_index_range(text):
        if not 0 <= i < len(tasks):
            raise ConfigError(f"--task-id {i}: the preset {cfg.preset!r} has training tasks "
                              f"0..{len(tasks) - 1}")
        ensemble, replica, sigma = tasks[i]
        replicas = groups.setdefault((ensemble, sigma), [])
        if replica not in replicas:
            replicas.append(replica)
    return [(ens, s, sorted(r)) for (ens, s), r in groups.items()]


def check_run(cfg, ensemble: str, sigma, replicas) -> tuple[str, float, list[int]]:
    """(ensemble, σ as in the preset, sorted distinct replicas), or a ConfigError."""
    if ensemble not in training_runs_table(cfg):
        raise ConfigError(f"ensemble {ensemble!r}: expected one of {list(training_runs_table(cfg))}")
    bad = [r for r in replicas if not 0 <= r < cfg["n_replicas"]]
    if bad:
        raise ConfigError(f"replicas {bad}: the preset has n_replicas={cfg['n_replicas']} "
                          f"(0..{cfg['n_replicas'] - 1})")
    return ensemble, preset_sigma(cfg, sigma), sorted(set(replicas))

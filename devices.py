"""The machine: torch's CPU threads and the device, chosen in one place for training,
prediction and the benchmarks."""
from __future__ import annotations

import os

import torch


def configure_threads() -> int:
    """torch CPU threads = $SLURM_CPUS_PER_TASK, else $OMP_NUM_THREADS, else torch's default."""
    for name in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            torch.set_num_threads(int(value))
            break
    return torch.get_num_threads()


def select_device() -> torch.device:
    """cuda if a GPU is visible, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

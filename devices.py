"""The machine: torch's CPU threads and the device, chosen in one place for training,
prediction and the benchmarks."""
from __future__ import annotations

import os

import numpy as np
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


def to_device(array: np.ndarray, device) -> torch.Tensor:
    """A host array on ``device``.  To CUDA it goes through pinned (page-locked) memory with a
    non-blocking copy: the host queues the copy behind the queued steps and goes on, instead of
    waiting for the GPU to finish them (a copy from pageable memory does wait).  On the CPU it is
    the array itself, not copied."""
    host = torch.from_numpy(np.ascontiguousarray(array))
    device = torch.device(device)
    if device.type != "cuda":
        return host
    return host.pin_memory().to(device, non_blocking=True)

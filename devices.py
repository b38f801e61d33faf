"""The machine: torch's CPU threads, the device and its float32 precision, chosen in one place
for training, prediction and the benchmarks."""
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


def select_device(requested=None, tf32: bool = False) -> torch.device:
    """The device: ``requested`` if given, else cuda if a GPU is visible, else cpu; and the float32
    precision of CUDA's matrix products and cuDNN's convolutions: IEEE float32 unless ``tf32``
    (the preset key, off by default).  TF32 keeps 10 of float32's 23 mantissa bits of every
    operand: faster on NVIDIA GPUs since Ampere, but it changes the numbers, and cuDNN
    convolutions would use it by default.  On the CPU it has no effect."""
    set_float32_precision(tf32)
    if requested is not None:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_float32_precision(tf32: bool) -> None:
    precision = "tf32" if tf32 else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):        # torch >= 2.9
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
        torch.backends.cudnn.rnn.fp32_precision = precision
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(tf32)


def float32_precision() -> str:
    """What set_float32_precision set, in words (for the logs)."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        tf32 = "tf32" in (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    else:
        tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
    return "TF32 on (CUDA matmul/conv)" if tf32 else "IEEE float32 (TF32 off)"


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

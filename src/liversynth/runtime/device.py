"""Device choice in one place: CUDA with bf16 autocast when present, else CPU."""
from __future__ import annotations

import contextlib

import numpy as np
import torch

__all__ = ["autocast", "pick_device", "to_device"]


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, cpu_bf16: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (no loss scaling needed). On CPU fp32, unless `cpu_bf16`.

    CPU bf16 only pays where the CPU has bf16 matrix units (Intel AMX / AVX512-BF16: `amx_bf16` in
    /proc/cpuinfo): there oneDNN convolutions run 2-2.5x faster than fp32; elsewhere it is emulated
    and slower. It changes the numbers a run produces, so it is opt-in.
    """
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A float32 host array (or memory-map slice) on `device`.

    For CUDA the batch is staged in pinned (page-locked) memory and copied asynchronously, so the
    copy overlaps with the GPU work already queued instead of stalling on a pageable buffer.
    """
    tensor = torch.from_numpy(np.array(array, np.float32))  # a copy: memory maps are read-only
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)

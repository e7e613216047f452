"""Threads and determinism, applied by every stage before any torch work (params.yaml `runtime:`).

Float results depend on the intra-op thread count (reductions split differently) and on the CPU's
kernels; at a fixed thread count, with deterministic algorithms, a stage gives identical outputs on
machines of the same CPU type.
"""
from __future__ import annotations

import os

import torch

from liversynth.config import RuntimeConfig

__all__ = ["apply_runtime"]


def apply_runtime(cfg: RuntimeConfig) -> None:
    """Set torch's intra-/inter-op threads and deterministic algorithms (also cuDNN/cuBLAS on GPU)."""
    if cfg.deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before CUDA initialises.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(cfg.deterministic)
    torch.set_num_threads(cfg.threads)
    try:
        torch.set_num_interop_threads(cfg.interop_threads)
    except RuntimeError:  # only settable before the first parallel work; a second call keeps the first
        pass

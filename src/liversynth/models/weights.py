"""Weights on disk: a module's state_dict written atomically and read back with `weights_only=True`.

Here, below training and inference, because both write and read weights: the trainer saves them,
the stages and the registered model load them, and neither should import the other to do so.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from liversynth.utils.files import write_atomic_file

__all__ = ["load_weights", "save_torch", "save_weights"]


def save_torch(path: Path, obj: Any) -> None:
    """torch.save into memory, then one durable atomic write: a kill never leaves half a file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic_file(Path(path), buf.getvalue())


def save_weights(module: nn.Module, path: Path) -> None:
    """A module's weights as a CPU state_dict (the only weights format liversynth writes)."""
    save_torch(path, {k: v.detach().cpu() for k, v in module.state_dict().items()})


def load_weights(module: nn.Module, path: Path, device: torch.device | None = None) -> nn.Module:
    """Load `save_weights` output into `module` (never unpickles code), move it to `device`, eval mode."""
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return module.to(device or torch.device("cpu")).eval()

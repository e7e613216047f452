"""Training checkpoints: written atomically, read back only by the training they belong to."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from liversynth.atomic import write_atomic_file


def load_checkpoint(path: Path, fingerprint: str, device: torch.device) -> dict | None:
    """The checkpoint's contents if it belongs to this training, else None (a fresh start, not a crash)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
        return None
    return state if isinstance(state, dict) and state.get("fingerprint") == fingerprint else None


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save into memory, then one atomic write: a kill never leaves half a checkpoint."""
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic_file(Path(path), buf.getvalue())

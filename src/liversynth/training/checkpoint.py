"""Training state on disk: resumable checkpoints, written atomically, read with `weights_only=True`
(finished weights: liversynth.models.weights)."""
from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liversynth.models.weights import save_torch
from liversynth.utils.hashing import array_sample_digest

__all__ = ["load_checkpoint", "save_checkpoint", "training_fingerprint"]

_log = logging.getLogger(__name__)


def training_fingerprint(config: dict[str, Any], seed: int, arrays: Iterable[np.ndarray], **extra: Any) -> str:
    """Identity of one training, for deciding whether a checkpoint may be resumed: its config, seed,
    the shapes of its data and a few strided rows of each array (cheap even on memory maps), so other
    data of the same shape never resumes someone else's run."""
    sample, shapes = array_sample_digest(arrays)
    payload = {"cfg": config, "seed": seed, "shapes": shapes, "sample": sample, **extra}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_checkpoint(path: Path, fingerprint: str, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint's contents if it belongs to this training, else None (a fresh start, not a crash)."""
    if not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        # Discarded, never silently: the training restarts from step 0 and the log says why.
        _log.warning("%s: unreadable checkpoint discarded, training starts from scratch (%s: %s)",
                     path, type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        return None
    if not isinstance(state, dict) or "fingerprint" not in state:
        _log.warning("%s: not a liversynth checkpoint (no fingerprint), discarded; training starts from scratch",
                     path)
        return None
    return state if state.get("fingerprint") == fingerprint else None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    save_torch(path, state)

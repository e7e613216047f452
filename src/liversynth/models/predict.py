"""Liver masks from a trained U-Net, batch by batch, on whatever device the model sits on."""
from __future__ import annotations

import numpy as np
import torch

from liversynth.runtime.device import autocast, to_device

__all__ = ["predict"]


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, batch_size: int = 64,
            device: torch.device | None = None) -> np.ndarray:
    """Binary liver masks (N, H, W) uint8 for images (N, 1, H, W)."""
    device = device or next(model.parameters()).device
    try:
        model.eval()
    except NotImplementedError:  # a torch.export program (MLflow's pt2 format) is inference-only already
        pass
    out = []
    for start in range(0, len(images), batch_size):
        x = to_device(images[start : start + batch_size], device)
        with autocast(device):
            logits = model(x)
        out.append(logits.argmax(1).to(torch.uint8).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *images.shape[2:]), np.uint8)

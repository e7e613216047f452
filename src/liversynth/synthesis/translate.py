"""Apply a trained CT->MRI generator to CT slices: synthetic MRI that keeps the CT labels.

Synthetic MRI slices keep their CT labels and CT patient ids, so downstream splits by patient
still see one patient as one unit.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from liversynth.data.slice_set import SliceSet
from liversynth.runtime.device import autocast, pick_device, to_device

__all__ = ["batches", "synthesize", "translate"]


def batches(images: np.ndarray, batch_size: int, device: torch.device) -> Iterator[tuple[int, Tensor]]:
    for i in range(0, len(images), batch_size):
        yield i, to_device(images[i : i + batch_size], device)  # pinned + async on CUDA


def translate(generator: nn.Module, x: Tensor, device: torch.device) -> Tensor:
    with autocast(device):
        return generator(x).float().clamp(-1.0, 1.0)


@torch.inference_mode()
def synthesize(
    generator: nn.Module, ct: SliceSet, batch_size: int, device: torch.device | None = None
) -> SliceSet:
    """Every CT slice mapped to synthetic MRI (float32 in [-1, 1]); labels and patient ids unchanged.

    The generator is moved to `device` (default: CUDA if present) and run in eval mode.
    """
    device = device or pick_device()
    was_training = generator.training
    generator.to(device).eval()
    out = np.empty(ct.images.shape, np.float32)
    for i, x in batches(ct.images, batch_size, device):
        out[i : i + len(x)] = translate(generator, x, device).cpu().numpy()
    generator.train(was_training)
    return SliceSet(out, np.array(ct.labels, np.uint8), np.array(ct.patients))

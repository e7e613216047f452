"""Bring every scan to one in-plane pixel size and field of view before slicing.

Real cohorts mix 0.7 mm CT and 3 mm MRI pixels and fields of view from 300 to 500 mm; resizing each
slice straight to the network's input would give each patient its own scale. Resampling to
`spacing_mm` and centre-cropping/padding to `size` pixels gives all of them the same field of
view (`size * spacing_mm`), so an organ has the same size in pixels whatever the scanner.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from liversynth.data.readers import Volume

__all__ = ["to_common_grid"]


def to_common_grid(volume: Volume, spacing_mm: float, size: int) -> Volume:
    """Resample slices to `spacing_mm` pixels (bilinear, anti-aliased; nearest for the mask), then
    centre-crop or pad (with the scan's minimum, i.e. air) to `size` x `size`."""
    if spacing_mm <= 0:
        raise ValueError(f"data.spacing_mm must be > 0, got {spacing_mm}")
    z_mm, row_mm, col_mm = volume.spacing
    _, height, width = volume.image.shape
    target = (max(1, round(height * row_mm / spacing_mm)), max(1, round(width * col_mm / spacing_mm)))
    image, label = volume.image, volume.label
    if target != (height, width):
        image = F.interpolate(torch.from_numpy(np.ascontiguousarray(image, np.float32))[:, None], size=target,
                              mode="bilinear", antialias=True, align_corners=False)[:, 0].numpy()
        label = F.interpolate(torch.from_numpy(label.astype(np.float32))[:, None], size=target,
                              mode="nearest-exact")[:, 0].numpy().astype(np.uint8)
    fill = float(volume.image.min()) if volume.image.size else 0.0
    return dataclasses.replace(
        volume,
        image=_crop_or_pad(image.astype(np.float32), size, fill),
        label=_crop_or_pad(label, size, 0),
        spacing=(z_mm, float(spacing_mm), float(spacing_mm)),
    )


def _crop_or_pad(stack: np.ndarray, size: int, fill: float) -> np.ndarray:
    """(Z, H, W) -> (Z, size, size), keeping the centre."""
    out = np.full((stack.shape[0], size, size), fill, stack.dtype)
    src, dst = [], []
    for n in stack.shape[1:]:
        if n >= size:
            start = (n - size) // 2
            src.append(slice(start, start + size))
            dst.append(slice(0, size))
        else:
            start = (size - n) // 2
            src.append(slice(0, n))
            dst.append(slice(start, start + n))
    out[:, dst[0], dst[1]] = stack[:, src[0], src[1]]
    return out

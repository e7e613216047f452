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

__all__ = ["common_grid_shape", "from_common_grid", "to_common_grid"]


def to_common_grid(volume: Volume, spacing_mm: float, size: int) -> Volume:
    """Resample slices to `spacing_mm` pixels (bilinear, anti-aliased; nearest for the mask), then
    centre-crop or pad (with the scan's minimum, i.e. air) to `size` x `size`."""
    if spacing_mm <= 0:
        raise ValueError(f"data.spacing_mm must be > 0, got {spacing_mm}")
    z_mm, row_mm, col_mm = volume.spacing
    _, height, width = volume.image.shape
    target = common_grid_shape((height, width), (row_mm, col_mm), spacing_mm)
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


def common_grid_shape(shape: tuple[int, int], spacing: tuple[float, float], spacing_mm: float) -> tuple[int, int]:
    """(rows, cols) of a slice of `shape` pixels of `spacing` mm once resampled to `spacing_mm` pixels."""
    return (max(1, round(shape[0] * spacing[0] / spacing_mm)), max(1, round(shape[1] * spacing[1] / spacing_mm)))


def from_common_grid(stack: np.ndarray, shape: tuple[int, int], spacing: tuple[float, float], spacing_mm: float,
                     mode: str, fill: float = 0.0) -> np.ndarray:
    """The inverse of `to_common_grid` for (Z, size, size) network-grid slices: un-crop/un-pad to the
    resampled size, then resample back to the scan's own (rows, cols) `shape` with `mode`
    ("nearest-exact" for masks, "bilinear" for images). What the crop cut off is `fill`."""
    target = common_grid_shape(shape, spacing, spacing_mm)
    out = _crop_or_pad(np.asarray(stack, np.float32), target, fill)
    if target != tuple(shape):
        out = F.interpolate(torch.from_numpy(out)[:, None], size=tuple(shape), mode=mode,
                            **({"align_corners": False} if mode == "bilinear" else {}))[:, 0].numpy()
    return out


def _crop_or_pad(stack: np.ndarray, size: int | tuple[int, int], fill: float) -> np.ndarray:
    """(Z, H, W) -> (Z, rows, cols) (`size` or `(size, size)`), keeping the centre."""
    rows, cols = (size, size) if isinstance(size, int) else size
    out = np.full((stack.shape[0], rows, cols), fill, stack.dtype)
    src, dst = [], []
    for n, size in zip(stack.shape[1:], (rows, cols)):
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

"""Run a registered network on raw slices or a whole scan: `prepare`'s preprocessing, batches, inverse geometry.

The same functions serve the CLI (`liversynth segment|translate`), the batch flow, the register stage's
demo and the MLflow pyfunc model, so a mask from the REST server equals the one from the command line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from liversynth.data.prepare import restore_slices, to_network_slices
from liversynth.data.readers.base import Volume
from liversynth.inference.scan import Scan
from liversynth.inference.spec import ModelSpec
from liversynth.runtime.device import autocast, to_device

__all__ = ["network_input", "run_network", "segment_scan", "segment_slices", "translate_scan", "translate_slices"]


def network_input(slices: np.ndarray, spacing: tuple[float, float], spec: ModelSpec) -> np.ndarray:
    """Raw (N, H, W) display-orientation slices of one volume (HU for CT, scanner units for MRI) of
    `spacing` (row, col) mm -> (N, 1, S, S) network input in [-1, 1], exactly as `prepare` makes it.
    MRI is normalised by percentiles of all the slices given: pass a whole volume (or a thick slab)."""
    slices = np.asarray(slices, np.float32)
    if slices.ndim == 2:
        slices = slices[None]
    if slices.ndim != 3 or min(slices.shape) < 1:
        raise ValueError(f"expected slices of shape (N, H, W), got {slices.shape}")
    if not np.isfinite(slices).all():
        raise ValueError(f"input holds {np.count_nonzero(~np.isfinite(slices))} NaN/Inf values")
    if min(spacing) <= 0:
        raise ValueError(f"pixel spacing must be > 0 mm, got {spacing}")
    volume = Volume(patient="", modality=spec.modality, image=slices, label=np.zeros(slices.shape, np.uint8),
                    spacing=(1.0, float(spacing[0]), float(spacing[1])), source=Path())
    images, _ = to_network_slices(volume, spec.prepare, spec.spacing_mm)
    return np.ascontiguousarray(images[:, None], np.float32)


@torch.no_grad()
def run_network(module: nn.Module, x: np.ndarray, kind: str, batch_size: int = 32,
                progress: bool = False) -> np.ndarray:
    """(N, 1, S, S) -> (N, S, S): liver masks (unet) or MRI-like images in [-1, 1] (ct2mri), batch by batch."""
    device = next(module.parameters()).device
    module.eval()
    out = []
    for start in tqdm(range(0, len(x), batch_size), desc=kind, unit="batch", disable=None if progress else True):
        batch = to_device(x[start : start + batch_size], device)
        with autocast(device):
            y = module(batch)
        y = y.argmax(1).to(torch.uint8) if kind == "unet" else y.float().clamp(-1.0, 1.0)[:, 0]
        out.append(y.cpu().numpy())
    return np.concatenate(out)


def segment_slices(module: nn.Module, spec: ModelSpec, slices: np.ndarray, spacing: tuple[float, float],
                   batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """Binary liver masks (N, H, W) uint8 on the input slices' own grid."""
    x = network_input(slices, spacing, spec)
    masks = run_network(module, x, "unet", batch_size, progress).astype(np.float32)
    shape = x.shape[:1] + np.asarray(slices).shape[-2:]
    back = restore_slices(masks, shape[1:], spacing, spec.image_size, spec.spacing_mm, "nearest-exact", 0.0)
    return (back > 0.5).astype(np.uint8)


def translate_slices(module: nn.Module, spec: ModelSpec, slices: np.ndarray, spacing: tuple[float, float],
                     batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """MRI-like slices (N, H, W) float32 in [-1, 1] (the generator's range) on the CT slices' own grid;
    outside a resampled field of view the value is -1 (background)."""
    x = network_input(slices, spacing, spec)
    images = run_network(module, x, "ct2mri", batch_size, progress)
    back = restore_slices(images, np.asarray(slices).shape[-2:], spacing, spec.image_size, spec.spacing_mm,
                          "bilinear", -1.0)
    return np.clip(back, -1.0, 1.0).astype(np.float32)


def segment_scan(module: nn.Module, spec: ModelSpec, scan: Scan, batch_size: int = 32,
                 progress: bool = False) -> tuple[np.ndarray, float]:
    """(display-orientation mask (Z, H, W), liver volume in mL) for a whole scan."""
    _check_kind(spec, "unet")
    mask = segment_slices(module, spec, scan.image, scan.spacing[1:], batch_size, progress)
    return mask, float(mask.sum()) * scan.voxel_ml


def translate_scan(module: nn.Module, spec: ModelSpec, scan: Scan, batch_size: int = 32,
                   progress: bool = False) -> np.ndarray:
    _check_kind(spec, "ct2mri")
    return translate_slices(module, spec, scan.image, scan.spacing[1:], batch_size, progress)


def _check_kind(spec: ModelSpec, kind: str) -> None:
    if spec.kind != kind:
        raise ValueError(f"this model is a {spec.kind!r} model; this command needs a {kind!r} model")

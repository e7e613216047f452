"""Apply a trained CT->MRI generator, and measure how good the translation is.

Synthetic MRI slices keep their CT labels and CT patient ids, so downstream splits by patient
still see one patient as one unit.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from monai.metrics import SSIMMetric
from scipy.stats import wasserstein_distance
from torch import Tensor, nn

from liversynth.models.essnet import EssNet
from liversynth.slices import SliceSet
from liversynth.device import autocast, pick_device, to_device

# Prepared images put background at exactly -1; anything above this is treated as body.
BODY_THRESHOLD = -0.99
_DATA_RANGE = 2.0  # images live in [-1, 1]


def _batches(images: np.ndarray, batch_size: int, device: torch.device) -> Iterator[tuple[int, Tensor]]:
    for i in range(0, len(images), batch_size):
        yield i, to_device(images[i : i + batch_size], device)  # pinned + async on CUDA


def _translate(generator: nn.Module, x: Tensor, device: torch.device) -> Tensor:
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
    for i, x in _batches(ct.images, batch_size, device):
        out[i : i + len(x)] = _translate(generator, x, device).cpu().numpy()
    generator.train(was_training)
    return SliceSet(out, np.array(ct.labels, np.uint8), np.array(ct.patients))


@torch.inference_mode()
def _cycle_scores(
    forward: nn.Module, backward: nn.Module, images: np.ndarray, batch_size: int, device: torch.device
) -> dict[str, float]:
    ssim = SSIMMetric(spatial_dims=2, data_range=_DATA_RANGE)
    abs_err, n_pixels, psnrs, ssims = 0.0, 0, [], []
    for _, x in _batches(images, batch_size, device):
        rec = _translate(backward, _translate(forward, x, device), device)
        err = rec - x
        abs_err += float(err.abs().sum())
        n_pixels += err.numel()
        mse = err.pow(2).flatten(1).mean(1).clamp_min(1e-10)  # clamp: a perfect cycle would be +inf dB
        psnrs.append(10.0 * torch.log10(_DATA_RANGE**2 / mse))
        ssims.append(ssim(rec, x).flatten())
    return {
        "mae": abs_err / max(n_pixels, 1),
        "psnr": float(torch.cat(psnrs).mean()) if psnrs else float("nan"),
        "ssim": float(torch.cat(ssims).mean()) if ssims else float("nan"),
    }


def cycle_metrics(
    model: EssNet,
    ct: SliceSet,
    mri_images: np.ndarray,
    batch_size: int,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Cycle-reconstruction MAE, PSNR (dB) and SSIM for CT->MRI->CT and MRI->CT->MRI.

    Keys: ct_cycle_{mae,psnr,ssim}, mri_cycle_{mae,psnr,ssim}. Unpaired data has no ground truth
    for the translation itself, so cycle consistency is the closest measurable proxy.
    """
    device = device or pick_device()
    was_training = model.training
    model.to(device).eval()
    scores = {
        "ct": _cycle_scores(model.g_ct2mri, model.g_mri2ct, ct.images, batch_size, device),
        "mri": _cycle_scores(model.g_mri2ct, model.g_ct2mri, mri_images, batch_size, device),
    }
    model.train(was_training)
    return {f"{domain}_cycle_{name}": value for domain, s in scores.items() for name, value in s.items()}


def _body_values(images: np.ndarray, max_values: int) -> np.ndarray:
    flat = np.asarray(images, np.float32).ravel()
    body = flat[flat > BODY_THRESHOLD]
    if body.size == 0:  # an all-background input: compare whatever there is
        body = flat
    if body.size > max_values:
        # Fixed seed: the same inputs always give the same distance.
        body = body[np.random.default_rng(0).choice(body.size, max_values, replace=False)]
    return body


def histogram_wasserstein(a: np.ndarray, b: np.ndarray, max_values: int = 200_000) -> float:
    """1-D Wasserstein distance between body-pixel intensity distributions of two image sets.

    Measures how MRI-like synthetic intensities are (lower is closer); background is excluded so
    differing amounts of air do not dominate.
    """
    return float(wasserstein_distance(_body_values(a, max_values), _body_values(b, max_values)))

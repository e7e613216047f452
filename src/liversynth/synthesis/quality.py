"""How good a CT->MRI translation is, without downloaded weights: intensity histograms, cycle
reconstruction, and whether a real-MRI segmenter finds the CT's liver in the synthetic MRI."""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from torch import nn

from liversynth.data.slice_set import BODY_THRESHOLD, SliceSet
from liversynth.models.predict import predict, segmentation_scores
from liversynth.models.essnet import EssNet
from liversynth.runtime.device import pick_device
from liversynth.synthesis.translate import batches, translate

__all__ = ["cycle_metrics", "histogram_wasserstein", "segmentation_consistency"]

_DATA_RANGE = 2.0  # images live in [-1, 1]


@torch.inference_mode()
def _cycle_scores(
    forward: nn.Module, backward: nn.Module, images: np.ndarray, batch_size: int, device: torch.device
) -> dict[str, float]:
    from monai.metrics import SSIMMetric  # here: MONAI takes seconds to import

    ssim = SSIMMetric(spatial_dims=2, data_range=_DATA_RANGE)
    abs_err, n_pixels, psnrs, ssims = 0.0, 0, [], []
    for _, x in batches(images, batch_size, device):
        rec = translate(backward, translate(forward, x, device), device)
        err = rec - x
        abs_err += float(err.abs().sum())
        n_pixels += err.numel()
        mse = err.pow(2).flatten(1).mean(1).clamp_min(1e-10)  # clamp: a perfect cycle would be +inf dB
        psnrs.append(10.0 * torch.log10(_DATA_RANGE**2 / mse))
        ssims.append(torch.as_tensor(ssim(rec, x)).flatten())
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


def segmentation_consistency(segmenter: nn.Module, synthetic: SliceSet) -> float:
    """Dice (pooled) of a real-MRI-only U-Net on synthetic MRI against the carried-over CT label.

    High when the synthetic liver looks like a real MRI liver where the CT said it is: a
    translation-quality score that needs no downloaded feature extractor.
    """
    pred = predict(segmenter, synthetic.images)
    return float(segmentation_scores(pred, synthetic.labels, synthetic.patients)["dice_pooled"])

"""Liver masks from a trained U-Net, batch by batch, on whatever device the model sits on, and how
they score against labels. Here, below training, evaluation and synthesis, since all three predict
and score (validation IoU while training, test scores, segmentation consistency)."""
from __future__ import annotations

import numpy as np
import torch

from liversynth.runtime.device import autocast, to_device

__all__ = ["predict", "segmentation_scores"]


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


def _overlap(pred: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """IoU and Dice of two binary masks; two empty masks agree perfectly."""
    p, g = pred.astype(bool), label.astype(bool)
    inter, union, total = np.logical_and(p, g).sum(), np.logical_or(p, g).sum(), p.sum() + g.sum()
    if union == 0:
        return 1.0, 1.0
    return float(inter / union), float(2 * inter / total)


def segmentation_scores(pred: np.ndarray, label: np.ndarray, patients: np.ndarray) -> dict:
    """Liver IoU/Dice three ways.

    - `iou`/`dice`: mean over patients of the per-patient (3D) score: the headline, and the unit the
      bootstrap resamples, since slices of one patient are not independent.
    - `iou_pooled`/`dice_pooled`: every test pixel pooled.
    - `iou_slice`/`dice_slice`: MONAI MeanIoU/DiceMetric per slice, slices without liver ignored.
    """
    pred, label = np.asarray(pred).astype(np.uint8), np.asarray(label).astype(np.uint8)
    per_patient = {}
    for pid in sorted(set(np.asarray(patients).tolist())):
        sel = np.asarray(patients) == pid
        iou, dice = _overlap(pred[sel], label[sel])
        per_patient[pid] = {"iou": iou, "dice": dice}
    pooled_iou, pooled_dice = _overlap(pred, label)
    slice_iou, slice_dice = _monai_slice_means(pred, label)
    return {
        "iou": float(np.mean([v["iou"] for v in per_patient.values()])) if per_patient else float("nan"),
        "dice": float(np.mean([v["dice"] for v in per_patient.values()])) if per_patient else float("nan"),
        "iou_pooled": pooled_iou, "dice_pooled": pooled_dice,
        "iou_slice": slice_iou, "dice_slice": slice_dice,
        "per_patient": per_patient,
    }


def _monai_slice_means(pred: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    from monai.metrics import DiceMetric, MeanIoU  # here: MONAI takes seconds to import

    if len(pred) == 0:
        return float("nan"), float("nan")
    p = torch.nn.functional.one_hot(torch.as_tensor(pred).long(), 2).permute(0, 3, 1, 2)
    g = torch.nn.functional.one_hot(torch.as_tensor(label).long(), 2).permute(0, 3, 1, 2)
    iou = torch.as_tensor(MeanIoU(include_background=False, reduction="none", ignore_empty=True)(p, g))
    dice = torch.as_tensor(DiceMetric(include_background=False, reduction="none", ignore_empty=True)(p, g))
    return float(np.nanmean(iou.numpy())) if torch.isfinite(iou).any() else float("nan"), \
        float(np.nanmean(dice.numpy())) if torch.isfinite(dice).any() else float("nan")

"""Segmentation scores and the paired bootstrap used to judge whether synthetic MRI helps."""
from __future__ import annotations

import numpy as np
import torch

from liversynth.data.slice_set import SliceSet
from liversynth.inference.predict import predict

__all__ = ["paired_bootstrap", "per_patient_iou", "segmentation_scores"]


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


def paired_bootstrap(diff: np.ndarray, n_resamples: int, ci: float, seed: int = 0) -> dict[str, float]:
    """Mean of paired per-patient differences and its percentile bootstrap CI over patients."""
    diff = np.asarray(diff, dtype=np.float64)
    if diff.size == 0:
        raise ValueError("paired_bootstrap: no paired differences")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.size, size=(n_resamples, diff.size))
    means = diff[idx].mean(axis=1)
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return {"mean": float(diff.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "boot_share_positive": float((means > 0).mean()), "n": int(diff.size)}


def per_patient_iou(model: torch.nn.Module, test: SliceSet) -> dict[str, float]:
    """Per-patient (3D) IoU of one model's predictions on a slice set."""
    scores = segmentation_scores(predict(model, test.images), test.labels, test.patients)
    return {p: v["iou"] for p, v in scores["per_patient"].items()}

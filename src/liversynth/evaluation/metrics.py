"""The paired bootstrap used to judge whether synthetic MRI helps, and per-patient IoU of a model
(the scores themselves: liversynth.models.predict, where training uses them too)."""
from __future__ import annotations

import numpy as np
import torch

from liversynth.data.slice_set import SliceSet
from liversynth.models.predict import predict, segmentation_scores

__all__ = ["paired_bootstrap", "per_patient_iou"]


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

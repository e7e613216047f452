"""The arms compared on the test split: per-arm summaries over seeds, and paired gains over patients.

The gain is resampled over test patients (slices of one patient are not independent): for each
patient the IoU of each arm is averaged over seeds, and the paired differences are bootstrapped.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from liversynth.config import EvaluateConfig
from liversynth.evaluation.metrics import paired_bootstrap

__all__ = ["SUMMARY_KEYS", "compare_arms", "per_patient_rows"]

SUMMARY_KEYS = ("iou", "dice", "iou_pooled", "dice_pooled", "iou_slice", "dice_slice")
# (name in metrics.json, arm a, arm b): the gain of a over b
COMPARISONS = (("gain_iou", "mix", "real_only"),
               ("gain_iou_cyclegan", "mix_cyclegan", "real_only"),
               ("gain_iou_essnet_vs_cyclegan", "mix", "mix_cyclegan"))


def compare_arms(scores_by_arm: Mapping[str, Sequence[dict[str, Any]]], cfg: EvaluateConfig,
                 seed: int) -> dict[str, Any]:
    """`scores_by_arm[arm]` holds one `segmentation_scores` result per trained seed."""
    summary: dict[str, dict[str, float]] = {}
    for arm, runs in scores_by_arm.items():
        summary[arm] = {k: float(np.mean([r[k] for r in runs])) for k in SUMMARY_KEYS}
        summary[arm]["iou_seed_std"] = float(np.std([r["iou"] for r in runs]))
        summary[arm]["n_seeds"] = len(runs)
    patients = sorted(scores_by_arm["real_only"][0]["per_patient"])
    per_patient = {arm: np.array([np.mean([r["per_patient"][p]["iou"] for r in runs]) for p in patients])
                   for arm, runs in scores_by_arm.items()}
    gains = {name: paired_bootstrap(per_patient[a] - per_patient[b], cfg.n_bootstrap, cfg.ci, seed=seed)
             for name, a, b in COMPARISONS if a in per_patient and b in per_patient}
    return {"test": summary, **gains, "patients": patients,
            "per_patient_iou": {arm: v.tolist() for arm, v in per_patient.items()}}


def per_patient_rows(arm: str, seed: int, scores: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"arm": arm, "seed": seed, "patient": p, **v} for p, v in scores["per_patient"].items()]

"""Every trained U-Net of a benchmark, and the image-free CT-label atlas, scored on the test split:
the inputs of liversynth.evaluation.comparison.compare_arms. Pure: the caller logs the scores."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from liversynth.config import UNetConfig
from liversynth.data.slice_set import SliceSet
from liversynth.evaluation.atlas import atlas_predict, ct_label_atlas
from liversynth.evaluation.comparison import Run, per_patient_rows
from liversynth.models.predict import predict, segmentation_scores
from liversynth.models.unet import load_unet

__all__ = ["score_models"]


def score_models(models: list[dict[str, Any]], test: SliceSet, cfg: UNetConfig, ct_train: SliceSet
                 ) -> tuple[dict[str, list[Run]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(runs by arm, per-patient rows, each model's scores in the models' order); the atlas is arm
    "atlas" with U-Net seed -1."""
    by_arm: dict[str, list[Run]] = {}
    rows: list[dict[str, Any]] = []
    per_model = []
    for m in models:
        scores = segmentation_scores(predict(load_unet(Path(m["path"]), cfg), test.images), test.labels,
                                     test.patients)
        per_model.append(scores)
        by_arm.setdefault(m["arm"], []).append((m["seed"], m.get("generator_seed"), scores))
        rows += per_patient_rows(m["arm"], m["seed"], scores, m.get("generator_seed"))
    atlas = segmentation_scores(atlas_predict(ct_label_atlas(ct_train), test), test.labels, test.patients)
    by_arm["atlas"] = [(-1, None, atlas)]
    rows += per_patient_rows("atlas", -1, atlas)
    return by_arm, rows, per_model

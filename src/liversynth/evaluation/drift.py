"""How far synthetic MRI anatomy moves from its CT source: a fixed real-MRI-trained segmenter is run on
each synthetic slice and compared with the CT liver mask it should still show (per CT patient: Dice,
and the liver centroid displacement in pixels). A translation that keeps anatomy scores high Dice and
small displacement; the segmentation loss of EssNet is meant to make exactly this better."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from liversynth.data.slice_set import SliceSet
from liversynth.models.predict import predict

__all__ = ["anatomy_drift"]


def _centroid_shift(pred: np.ndarray, label: np.ndarray) -> float:
    """Mean over slices where both masks show liver of the distance between their centroids (pixels)."""
    shifts = []
    for p, g in zip(pred, label):
        if p.any() and g.any():
            shifts.append(float(np.hypot(*(np.argwhere(p).mean(0) - np.argwhere(g).mean(0)))))
    return float(np.mean(shifts)) if shifts else float("nan")


def _dice(p: np.ndarray, g: np.ndarray) -> float:
    total = p.sum() + g.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(p, g).sum() / total)


def anatomy_drift(segmenters: Sequence[nn.Module], synthetic: SliceSet) -> dict[str, np.ndarray | list[str]]:
    """Per segmenter (rows) and CT patient (columns): Dice against the CT mask, centroid shift."""
    patients = synthetic.patient_ids()
    labels = np.asarray(synthetic.labels).astype(bool)
    dice, shift = np.zeros((len(segmenters), len(patients))), np.zeros((len(segmenters), len(patients)))
    for i, model in enumerate(segmenters):
        pred = predict(model, synthetic.images).astype(bool)
        for j, pid in enumerate(patients):
            sel = synthetic.patients == pid
            dice[i, j] = _dice(pred[sel], labels[sel])
            shift[i, j] = _centroid_shift(pred[sel], labels[sel])
    return {"patients": patients, "dice": dice, "centroid_shift_px": shift}

"""The image-free control: a CT-label atlas. Each test slice gets the thresholded mean CT liver mask
at the same relative slice position; no image is looked at. Whatever a method scores above this
comes from reading images, not from knowing where livers usually are."""
from __future__ import annotations

import numpy as np

from liversynth.data.slice_set import SliceSet

__all__ = ["atlas_predict", "ct_label_atlas", "slice_positions"]


def slice_positions(patients: np.ndarray) -> np.ndarray:
    """Relative position (0..1, inferior -> superior) of each slice within its patient's stack;
    slices of a patient are stored in z order."""
    patients = np.asarray(patients)
    pos = np.zeros(len(patients))
    for pid in np.unique(patients):
        idx = np.flatnonzero(patients == pid)
        pos[idx] = (np.arange(len(idx)) + 0.5) / len(idx)
    return pos


def ct_label_atlas(ct: SliceSet, bins: int = 16) -> np.ndarray:
    """(bins, H, W) liver frequency of the CT training masks per relative slice position."""
    which = np.minimum((slice_positions(ct.patients) * bins).astype(int), bins - 1)
    labels = np.asarray(ct.labels, np.float64)
    atlas = np.zeros((bins, *labels.shape[1:]))
    for b in range(bins):
        if (which == b).any():
            atlas[b] = labels[which == b].mean(0)
    return atlas


def atlas_predict(atlas: np.ndarray, target: SliceSet, threshold: float = 0.5) -> np.ndarray:
    """Masks (N, H, W) uint8 for `target` from the atlas alone (its images are never read)."""
    bins = len(atlas)
    which = np.minimum((slice_positions(target.patients) * bins).astype(int), bins - 1)
    return (atlas[which] >= threshold).astype(np.uint8)

"""Control sources for the benchmark: CT slices as they are, and CT with its intensity histogram
matched to real MRI's (quantile mapping of body pixels). They carry the CT labels like synthetic MRI
does, so a method that only beats these has learned more than intensities."""
from __future__ import annotations

import numpy as np

from liversynth.data.slice_set import BODY_THRESHOLD, SliceSet

__all__ = ["histogram_matched", "quantiles"]


def quantiles(images: np.ndarray, n: int = 1001) -> np.ndarray:
    flat = np.asarray(images, np.float32).ravel()
    body = flat[flat > BODY_THRESHOLD]
    return np.quantile(body if body.size else flat, np.linspace(0, 1, n))


def histogram_matched(ct: SliceSet, mri_images: np.ndarray) -> SliceSet:
    """CT slices whose body-pixel intensities follow the real MRI distribution; background stays -1."""
    x = np.asarray(ct.images, np.float32)
    body = x > BODY_THRESHOLD
    out = np.full_like(x, -1.0)
    out[body] = np.interp(x[body], quantiles(x), quantiles(mri_images)).astype(np.float32)
    return SliceSet(out, np.array(ct.labels, np.uint8), np.array(ct.patients))

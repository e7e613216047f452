"""Translation fidelity: how close translated CT (fake MRI) is to the oracle, the perfect translation.

Cycle consistency and histogram distances say whether a translator is self-consistent and MRI-like,
not whether it put the right intensity in the right place; the phantom's oracle (data/oracle.py) is
ground truth, so here the translation itself is scored, pixel for pixel, on body pixels only (air
would reward any translator that keeps the background black):

- `ssim`: structural similarity, Gaussian window (sigma 1.5, as Wang et al. 2004), its map computed
  on the whole slice and averaged over body pixels;
- `psnr` (dB, data range 2: images live in [-1, 1]) and `mae`, over body pixels pooled;
- `contrast_rank`: Spearman rank correlation of per-tissue mean intensities, fake against oracle, over
  the tissue classes present. It asks whether the translator learnt the MRI's contrast order (fat
  bright, spleen above liver, vessels dark), which matters to a segmenter more than exact values.

Pure numpy/scipy and fast (well under a second for 64 slices of 64 x 64 at one thread), and it imports
no segmenter or evaluation code, so EssNet training can call it at every checkpoint
(`generator_fidelity` on `probe_index` slices: the generator's fidelity against the oracle).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from torch import nn

from liversynth.data.oracle_set import OracleSlices
from liversynth.data.slice_set import SliceSet
from liversynth.synthesis.translate import synthesize

__all__ = ["FIDELITY_KEYS", "body_mask", "fidelity", "fidelity_references", "generator_fidelity", "masked_ssim",
           "probe_index"]

FIDELITY_KEYS = ("ssim", "psnr", "mae", "contrast_rank")
_DATA_RANGE = 2.0
_C1, _C2 = (0.01 * _DATA_RANGE) ** 2, (0.03 * _DATA_RANGE) ** 2
_SIGMA = 1.5
_AIR = 0  # Tissue.AIR


def body_mask(oracle: OracleSlices) -> np.ndarray:
    """(N, H, W) bool: every pixel the phantom says is tissue, not air."""
    return np.asarray(oracle.tissue) != _AIR


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the Gaussian-window SSIM map of (N, H, W) image stacks over `mask` pixels."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, sigma=(0, _SIGMA, _SIGMA), truncate=3.5, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / ((mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2))
    return float(ssim_map[mask].mean()) if mask.any() else float("nan")


def _contrast_rank(fake: np.ndarray, oracle: np.ndarray, tissue: np.ndarray) -> float:
    # Here, not at module level: scipy.stats takes about a second to import, and train_essnet imports this
    # module before its first step but scores fidelity only at checkpoints, and only with an oracle (phantom).
    from scipy.stats import spearmanr

    classes = [t for t in np.unique(tissue) if t != _AIR]
    if len(classes) < 3:  # a rank correlation of two points says nothing
        return float("nan")
    f = [float(fake[tissue == t].mean()) for t in classes]
    o = [float(oracle[tissue == t].mean()) for t in classes]
    if np.ptp(f) == 0 or np.ptp(o) == 0:  # a constant translation has no contrast order at all
        return 0.0
    return float(spearmanr(f, o).statistic)


def fidelity(fake: np.ndarray | SliceSet, oracle: OracleSlices) -> dict[str, float]:
    """Fidelity of `fake` (N, 1, H, W) translated CT, aligned slice for slice with `oracle`.

    Keys `FIDELITY_KEYS`: ssim (1 = identical), psnr (dB), mae, contrast_rank (1 = same tissue order).
    """
    images = fake.images if isinstance(fake, SliceSet) else fake
    a = np.asarray(images, np.float32).reshape(len(images), *np.shape(images)[-2:])
    b = np.asarray(oracle.images, np.float32)[:, 0]
    if a.shape != b.shape:
        raise ValueError(f"fidelity: fake images {np.shape(images)} and oracle {oracle.images.shape} are not "
                         "aligned slice for slice")
    mask = body_mask(oracle)
    if not mask.any():
        raise ValueError("fidelity: the oracle has no body pixels")
    err = (a - b)[mask].astype(np.float64)
    mse = max(float(np.mean(err**2)), 1e-10)  # floor: identical images would be +inf dB
    return {
        "ssim": masked_ssim(a, b, mask),
        "psnr": float(10.0 * np.log10(_DATA_RANGE**2 / mse)),
        "mae": float(np.mean(np.abs(err))),
        "contrast_rank": _contrast_rank(a, b, np.asarray(oracle.tissue)),
    }


def probe_index(n: int, max_slices: int = 128) -> np.ndarray:
    """Evenly spaced slice indices, at most `max_slices` of `n`: a fixed probe set, so every checkpoint of
    every seed is scored on the same slices and scoring stays a small fraction of training time."""
    return np.unique(np.linspace(0, n - 1, min(n, max_slices)).round().astype(int)) if n else np.zeros(0, int)


def generator_fidelity(generator: nn.Module, ct: SliceSet, oracle: OracleSlices, batch_size: int = 32
                       ) -> dict[str, float]:
    """`fidelity` of a CT->MRI generator's translation of `ct` (aligned with `oracle`); leaves the
    generator in the training mode it was in."""
    return fidelity(synthesize(generator, ct, batch_size), oracle)


def fidelity_references(ct: SliceSet, oracle: OracleSlices, rerender: OracleSlices) -> dict[str, dict[str, float]]:
    """What the fidelity scale means on this data, scored on the same slices as a translator:

    - `perfect_rerender`: the same anatomy rendered again from an independent stream (its own texture
      and noise): a perfect translator, so the most any translator can score;
    - `ct_unchanged`: the CT itself, no translation;
    - `constant`: every pixel at the oracle's mean body intensity: no structure at all, the floor.
    """
    body = body_mask(oracle)
    flat = np.full_like(np.asarray(oracle.images, np.float32), float(np.asarray(oracle.images)[:, 0][body].mean()))
    return {"perfect_rerender": fidelity(rerender.images, oracle), "ct_unchanged": fidelity(ct, oracle),
            "constant": fidelity(flat, oracle)}

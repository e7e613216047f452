"""Intervals for a paired gain that include every source of training randomness.

The data are differences d[g, s, p]: generator seed g, U-Net seed s, test patient p (one generator
per variant gives G = 1). The hierarchical bootstrap resamples patients, then generator seeds, then
U-Net seeds (each with replacement) and takes the grand mean; its spread is the standard error of the
gain over all three sources. At n = 8 patients a percentile bootstrap under-covers (its SE is biased
low by sqrt((n-1)/n) and normal tails are too thin), so the reported interval is
mean +- t(n-1) * SE * sqrt(n/(n-1)): "hierarchical bootstrap SE, t(n-1) interval". Its coverage is
checked by simulation in tests/test_intervals.py. With G = 1, generator randomness cannot be
estimated and the result says so (`generator_seeds` = 1).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

__all__ = ["METHOD", "hierarchical_gain"]

METHOD = "hierarchical bootstrap (patients, generator seeds, U-Net seeds) SE, t(n-1) interval"


def _resampled_means(diff: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    g, s, p = diff.shape
    pi = rng.integers(0, p, (n_resamples, p))
    gi = rng.integers(0, g, (n_resamples, g))
    si = rng.integers(0, s, (n_resamples, s))
    # Index step by step so memory stays n_resamples * g * s * p.
    picked = diff[gi[:, :, None, None], si[:, None, :, None], pi[:, None, None, :]]
    return picked.reshape(n_resamples, -1).mean(axis=1)


def hierarchical_gain(diff: np.ndarray, n_resamples: int, ci: float, seed: int = 0) -> dict[str, Any]:
    """`diff` (G, S, P) or (S, P) of arm a minus arm b. Mean, SE, interval, and a two-sided p-value."""
    d = np.asarray(diff, np.float64)
    if d.ndim == 2:
        d = d[None]
    if d.ndim != 3 or d.size == 0:
        raise ValueError(f"hierarchical_gain: expected (generator seeds, U-Net seeds, patients), got {d.shape}")
    g, s, p = d.shape
    means = _resampled_means(d, n_resamples, np.random.default_rng(seed))
    mean = float(d.mean())
    se = float(means.std(ddof=1)) * np.sqrt(p / (p - 1)) if p > 1 else float("nan")
    t = float(stats.t.ppf(0.5 + ci / 2, df=max(p - 1, 1)))
    p_value = float(2 * stats.t.sf(abs(mean) / se, df=max(p - 1, 1))) if se > 0 else float("nan")
    return {"mean": mean, "se": se, "ci_low": mean - t * se, "ci_high": mean + t * se, "ci": ci,
            "p_value": p_value, "boot_share_positive": float((means > 0).mean()), "n": p,
            "generator_seeds": g, "unet_seeds": s, "method": METHOD}

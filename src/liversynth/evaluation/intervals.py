"""Intervals for a paired gain that include every source of training randomness.

The data are differences d[g, s, p]: generator seed g, U-Net seed s, test patient p (one generator
per variant gives G = 1). The hierarchical bootstrap resamples patients, then generator seeds, then
U-Net seeds (each with replacement) and takes the grand mean; its spread is the standard error of the
gain over all three sources. At n = 8 patients a percentile bootstrap under-covers (its SE is biased
low by sqrt((n-1)/n) and normal tails are too thin), so the reported interval is
mean +- t(n-1) * SE * sqrt(n/(n-1)): "hierarchical bootstrap SE, t(n-1) interval". Its coverage is
checked by simulation in tests/test_intervals.py. With G = 1, generator randomness cannot be
estimated and the result says so (`generator_seeds` = 1).

`share_of_ceiling` reads a translator's gain as a fraction of the oracle's (the ceiling of what any
translator adds): both gains are resampled with the same patient and replicate draws, the ratio taken
per resample, and its interval read from those ratios (percentiles: a ratio is skewed, and unbounded
where a resampled ceiling nears 0, so no symmetric t interval suits it).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

__all__ = ["METHOD", "SHARE_METHOD", "hierarchical_gain", "share_of_ceiling"]

METHOD = "hierarchical bootstrap (patients, generator seeds, U-Net seeds) SE, t(n-1) interval"
SHARE_METHOD = ("ratio of means per resample of one hierarchical bootstrap (patients, replicates of generator "
                "and U-Net seed), percentile interval")


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


def share_of_ceiling(gain: np.ndarray, ceiling: np.ndarray, n_resamples: int, ci: float,
                     seed: int = 0) -> dict[str, Any]:
    """`gain` and `ceiling`: (R, P) per-patient gains over the same baseline, replicate r of both the one
    trained with U-Net seed r (a translator's replicate r also on generator seed r). share = mean(gain) /
    mean(ceiling); each resample draws patients, then replicates, once for both, so the ratio's spread
    includes how the two gains move together. `ceiling_nonpositive` is the share of resamples whose
    ceiling is <= 0, where the ratio means nothing."""
    g, c = np.asarray(gain, np.float64), np.asarray(ceiling, np.float64)
    if g.ndim != 2 or g.shape != c.shape or g.size == 0:
        raise ValueError(f"share_of_ceiling: gain {g.shape} and ceiling {c.shape} must be the same (replicates, "
                         "patients)")
    r, p = g.shape
    rng = np.random.default_rng(seed)
    pi = rng.integers(0, p, (n_resamples, p))
    ri = rng.integers(0, r, (n_resamples, r))
    pick = lambda x: x[ri[:, :, None], pi[:, None, :]].reshape(n_resamples, -1).mean(axis=1)  # noqa: E731
    num, den = pick(g), pick(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(den > 0, num / den, np.nan)
    mean_c = float(c.mean())
    share = float(g.mean() / mean_c) if mean_c > 0 else float("nan")
    valid = ratios[np.isfinite(ratios)]
    low, high = (np.percentile(valid, [50 * (1 - ci), 50 * (1 + ci)]) if valid.size
                 else (float("nan"), float("nan")))
    return {"mean": share, "ci_low": float(low), "ci_high": float(high), "ci": ci,
            "ceiling_nonpositive": float((den <= 0).mean()), "n": p, "replicates": r, "method": SHARE_METHOD}

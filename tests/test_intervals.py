"""The gain interval covers the true gain at about its nominal rate with 8 patients, and widens with
generator randomness that a per-patient bootstrap would miss."""
from __future__ import annotations

import numpy as np
import pytest

from liversynth.evaluation.intervals import hierarchical_gain


def _simulate(rng: np.random.Generator, gain: float, g: int, s: int, p: int, sd_gen: float) -> np.ndarray:
    patient = rng.normal(0, 0.03, p)  # patient-to-patient spread of the gain
    generator = rng.normal(0, sd_gen, g)  # one shared offset per generator seed
    noise = rng.normal(0, 0.01, (g, s, p))  # U-Net seed noise
    return gain + patient[None, None, :] + generator[:, None, None] + noise


@pytest.mark.parametrize("g, sd_gen", [(1, 0.0), (3, 0.02)])
def test_coverage_is_close_to_nominal_at_8_patients(g: int, sd_gen: float) -> None:
    rng, true_gain, hits, trials = np.random.default_rng(1), 0.02, 0, 400
    for k in range(trials):
        r = hierarchical_gain(_simulate(rng, true_gain, g, 3, 8, sd_gen), 400, 0.95, seed=k)
        hits += r["ci_low"] <= true_gain <= r["ci_high"]
    # Nominal 0.95; a percentile bootstrap over 8 patients lands near 0.90 here.
    assert 0.91 <= hits / trials <= 0.99


def test_generator_randomness_widens_the_interval() -> None:
    rng = np.random.default_rng(0)
    base = _simulate(rng, 0.02, 1, 3, 8, 0.0)[0]
    shared = np.stack([base + off for off in (-0.03, 0.0, 0.03)])  # three generators disagree
    narrow = hierarchical_gain(base, 2000, 0.95)
    wide = hierarchical_gain(shared, 2000, 0.95)
    assert wide["ci_high"] - wide["ci_low"] > 1.5 * (narrow["ci_high"] - narrow["ci_low"])
    assert wide["generator_seeds"] == 3 and narrow["generator_seeds"] == 1


def test_bad_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="expected"):
        hierarchical_gain(np.zeros(5), 10, 0.95)

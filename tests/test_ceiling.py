"""The ceiling (oracle mix - real only) and each translator's share of it, from small synthetic per-patient
tables: the share's interval comes from the same resamples as both gains, and a ceiling whose interval
includes 0 is flagged as unable to show a translator's value."""
from __future__ import annotations

import numpy as np
import pytest

from liversynth.config import EvaluateConfig
from liversynth.evaluation.comparison import compare_arms
from liversynth.evaluation.intervals import share_of_ceiling

PATIENTS = [f"p{i}" for i in range(8)]


def _runs(iou: np.ndarray, generator: bool) -> list:
    """(U-Net seed, generator seed, scores) per row of `iou` (seeds x patients), as score_models gives them."""
    return [(s, s if generator else None,
             {"per_patient": {p: {"iou": float(v), "dice": float(v)} for p, v in zip(PATIENTS, row)},
              **{k: float(row.mean()) for k in ("iou", "dice", "iou_pooled", "dice_pooled", "iou_slice",
                                                  "dice_slice")}})
            for s, row in enumerate(iou)]


def _table(rng: np.random.Generator, ceiling: float, essnet: float, cyclegan: float, sd: float = 0.01) -> dict:
    base = 0.6 + rng.normal(0, 0.05, (3, 8))
    noise = lambda: rng.normal(0, sd, (3, 8))  # noqa: E731
    return {"real_only": _runs(base, False), "mix": _runs(base + essnet + noise(), True),
            "mix_cyclegan": _runs(base + cyclegan + noise(), True),
            "mix_oracle": _runs(base + ceiling + noise(), False),
            "oracle_only": _runs(base + 2 * ceiling + noise(), False)}


def test_share_of_a_clear_ceiling() -> None:
    cfg = EvaluateConfig(n_bootstrap=2000)
    result = compare_arms(_table(np.random.default_rng(0), 0.04, 0.02, -0.01), cfg, seed=0, registered=False)
    ceiling = result["ceiling"]
    assert ceiling["mean"] == pytest.approx(result["gain_iou_oracle"]["mean"])
    assert ceiling["ci_low"] > 0 and ceiling["shows_translation_value"]
    assert "gain_iou_oracle_only" in result
    essnet, cyclegan = result["share_of_ceiling"]["essnet"], result["share_of_ceiling"]["cyclegan"]
    assert essnet["mean"] == pytest.approx(result["gain_iou"]["mean"] / ceiling["mean"])
    assert essnet["ci_low"] < 0.5 < essnet["ci_high"] and essnet["ci_high"] < 1
    assert cyclegan["ci_high"] < 0 and essnet["arm"] == "mix"


def test_ceiling_with_zero_in_its_interval_is_flagged() -> None:
    cfg = EvaluateConfig(n_bootstrap=1000)
    result = compare_arms(_table(np.random.default_rng(1), 0.0, 0.0, 0.0, sd=0.03), cfg, seed=0, registered=False)
    assert result["ceiling"]["ci_low"] <= 0 <= result["ceiling"]["ci_high"]
    assert not result["ceiling"]["shows_translation_value"]
    assert result["share_of_ceiling"]["essnet"]["ceiling_nonpositive"] > 0.1


def test_without_oracle_arms_there_is_no_ceiling() -> None:
    table = _table(np.random.default_rng(2), 0.04, 0.02, 0.0)
    del table["mix_oracle"], table["oracle_only"]
    result = compare_arms(table, EvaluateConfig(n_bootstrap=200), seed=0, registered=False)
    assert "ceiling" not in result and "share_of_ceiling" not in result and "gain_iou" in result


def test_shared_resamples_make_a_correlated_share_tight() -> None:
    """A translator that moves with the ceiling patient by patient has a tight share; drawing the two
    gains independently would not show that."""
    rng = np.random.default_rng(3)
    ceiling = 0.05 + rng.normal(0, 0.04, (3, 8))
    correlated = share_of_ceiling(0.5 * ceiling, ceiling, 2000, 0.95)
    assert correlated["mean"] == pytest.approx(0.5)
    assert correlated["ci_high"] - correlated["ci_low"] < 1e-9
    independent = share_of_ceiling(0.5 * (0.05 + rng.normal(0, 0.04, (3, 8))), ceiling, 2000, 0.95)
    assert independent["ci_high"] - independent["ci_low"] > 0.2
    with pytest.raises(ValueError, match="same"):
        share_of_ceiling(np.zeros((3, 8)), np.zeros((2, 8)), 10, 0.95)

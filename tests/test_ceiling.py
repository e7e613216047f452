"""The ceiling (oracle mix - real only) and each translator's share of it, from small synthetic per-patient
tables: the share's interval comes from the same resamples as both gains, and a ceiling whose interval
includes 0 is flagged as unable to show a translator's value."""
from __future__ import annotations

import numpy as np
import pytest

from liversynth.config import EssNetConfig, EvaluateConfig
from liversynth.evaluation.ceiling import ceiling_lines, convergence
from liversynth.evaluation.comparison import compare_arms
from liversynth.evaluation.intervals import share_of_ceiling
from liversynth.evaluation.plots import budget_axis
from liversynth.evaluation.readme_results import _budget_lines
from liversynth.training.cells import budget_steps

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


def _fidelity_rows(rise_per_step: float, seeds: int = 3, steps: int = 600, every: int = 100) -> list[dict]:
    """SSIM that rises fast, then by `rise_per_step` per step over the second half."""
    return [{"seed": float(s), "step": float(t), "ssim": min(t, 300) * 1e-3 + max(t - 300, 0) * rise_per_step + s * 0.01,
             "psnr": 15.0, "mae": 0.2, "contrast_rank": 0.9} for s in range(seeds) for t in range(every, steps + 1, every)]


def test_convergence_slope_over_the_last_quarter() -> None:
    flat = convergence(_fidelity_rows(0.0), 600, 0.02)
    assert flat["converged_seeds"] == 3 and abs(flat["slope_ssim_per_1000_steps_mean"]) < 1e-9
    assert flat["per_seed"]["0"]["tail_steps"] == [500, 600] and flat["per_seed"]["2"]["checkpoints"] == 6
    rising = convergence(_fidelity_rows(1e-4), 600, 0.02)  # +0.1 SSIM per 1000 steps
    assert rising["converged_seeds"] == 0
    assert rising["slope_ssim_per_1000_steps_mean"] == pytest.approx(0.1)
    assert rising["final_mean"]["ssim"] == pytest.approx(0.3 + 0.03 + 0.01)


def test_ceiling_sentences() -> None:
    result = compare_arms(_table(np.random.default_rng(0), 0.04, 0.02, -0.01), EvaluateConfig(n_bootstrap=500),
                          seed=0, registered=False)
    metrics = {"oracle": {"available": True, "reason": None}, "ceiling": result["ceiling"],
               "share_of_ceiling": result["share_of_ceiling"],
               "fidelity": {"essnet": convergence(_fidelity_rows(1e-4), 600, 0.02)}}
    text = " ".join(ceiling_lines(metrics))
    assert "A perfect translator adds" in text and "EssNet reaches" in text and "CycleGAN reaches" in text
    assert "had not converged" in text
    flat = compare_arms(_table(np.random.default_rng(1), 0.0, 0.0, 0.0, sd=0.03), EvaluateConfig(n_bootstrap=500),
                        seed=0, registered=False)
    text = " ".join(ceiling_lines({**metrics, "ceiling": flat["ceiling"]}))
    assert "cannot show a translator's value" in text and "A perfect translator" not in text
    absent = ceiling_lines({"oracle": {"available": False, "reason": "data.dataset is 'nifti': no oracle"}})
    assert "nifti" in absent[0]


def test_budget_steps_and_the_budget_table(tmp_path) -> None:
    assert budget_steps(EssNetConfig(steps=600, checkpoint_every=100)) == (200, 300, 600)
    assert budget_steps(EssNetConfig(steps=4, checkpoint_every=2)) == (2, 4)
    result = compare_arms(_table(np.random.default_rng(0), 0.04, 0.02, -0.01), EvaluateConfig(n_bootstrap=200),
                          seed=0, registered=False)
    points = [{"step": s, "fraction": s / 600, "cpu_min": s / 100, "fidelity_ssim": 0.3 + s / 6000,
               "fidelity_psnr": 15.0, "fidelity_mae": 0.2, "fidelity_contrast_rank": 0.8,
               "gain_iou": result["gain_iou"], "ceiling": result["ceiling"],
               "share": result["share_of_ceiling"]["essnet"]} for s in (200, 300, 600)]
    assert budget_axis(points, tmp_path / "budget.png").stat().st_size > 0
    text = _budget_lines(points)
    assert len(text) == 5 + 3 and "| 300 | 0.50 | 3.0 | 0.350 |" in text[-2]

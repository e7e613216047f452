import numpy as np
import pytest

from liversynth.evaluation.metrics import paired_bootstrap
from liversynth.models.predict import segmentation_scores


def test_scores_known_overlap():
    label = np.zeros((2, 4, 4), np.uint8)
    label[:, :2, :2] = 1  # 4 px per slice
    pred = np.zeros_like(label)
    pred[:, :2, :1] = 1  # 2 px inside the liver per slice
    s = segmentation_scores(pred, label, np.array(["a", "b"]))
    assert s["iou"] == pytest.approx(0.5) and s["dice"] == pytest.approx(2 / 3)
    assert s["iou_pooled"] == pytest.approx(0.5) and s["iou_slice"] == pytest.approx(0.5)
    assert set(s["per_patient"]) == {"a", "b"}


def test_empty_patient_counts_as_agreement():
    z = np.zeros((1, 4, 4), np.uint8)
    assert segmentation_scores(z, z, np.array(["a"]))["iou"] == 1.0


def test_bootstrap_known_answer():
    # Differences symmetric around 0.02 with tiny spread: the CI must sit tightly around 0.02.
    diff = 0.02 + np.tile([-0.001, 0.001], 50)
    r = paired_bootstrap(diff, 4000, 0.95, seed=1)
    assert r["mean"] == pytest.approx(0.02)
    assert 0.0197 < r["ci_low"] < 0.02 < r["ci_high"] < 0.0203
    assert r["boot_share_positive"] == 1.0


def test_bootstrap_ci_matches_normal_theory():
    rng = np.random.default_rng(0)
    diff = rng.normal(0.0, 1.0, 400)
    r = paired_bootstrap(diff, 4000, 0.95, seed=0)
    half = 1.96 * diff.std(ddof=1) / np.sqrt(diff.size)  # the CLT answer
    assert (r["ci_high"] - r["ci_low"]) / 2 == pytest.approx(half, rel=0.1)
    assert r["ci_low"] < diff.mean() < r["ci_high"]

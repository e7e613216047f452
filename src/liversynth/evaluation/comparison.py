"""The arms compared on the test split: per-arm summaries over seeds, and paired gains with
intervals that include the training randomness (liversynth.evaluation.intervals).

The primary comparison, its metric and margin come from params (`evaluate.primary_*`), fixed before
test is read; every other comparison is reported as secondary. The test split's hash is recorded
and checked against the registered one.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from liversynth.config import EvaluateConfig
from liversynth.evaluation.intervals import hierarchical_gain, share_of_ceiling

__all__ = ["CEILING_KEY", "COMPARISONS", "SUMMARY_KEYS", "TRANSLATOR_MIXES", "TestSplitMismatch", "check_test_split",
           "compare_arms", "per_patient_rows", "shares_of_ceiling"]

SUMMARY_KEYS = ("iou", "dice", "iou_pooled", "dice_pooled", "iou_slice", "dice_slice")
# (key in metrics.json, arm a, arm b, what the gain of a over b shows)
COMPARISONS = (
    ("gain_iou", "mix", "real_only", "EssNet mix - real only"),
    ("gain_iou_essnet_vs_cyclegan", "mix", "mix_cyclegan", "EssNet mix - CycleGAN mix (segmentation loss)"),
    ("gain_iou_essnet_vs_ct", "mix", "mix_ct", "EssNet mix - raw CT mix (translation)"),
    ("gain_iou_essnet_vs_histmatch", "mix", "mix_histmatch", "EssNet mix - histogram-matched CT mix"),
    ("gain_iou_cyclegan", "mix_cyclegan", "real_only", "CycleGAN mix - real only"),
    ("gain_iou_ct", "mix_ct", "real_only", "raw CT mix - real only"),
    ("gain_iou_histmatch", "mix_histmatch", "real_only", "histogram-matched CT mix - real only"),
    ("gain_iou_synthetic_only", "synthetic_only", "real_only", "EssNet synthetic only - real only"),
    ("gain_iou_atlas", "atlas", "real_only", "CT-label atlas (no image) - real only"),
    # Phantom only (the oracle arms): the ceiling of what any translator adds, and the oracle alone.
    ("gain_iou_oracle", "mix_oracle", "real_only", "oracle mix - real only (the ceiling)"),
    ("gain_iou_oracle_only", "oracle_only", "real_only", "oracle only - real only"),
)
CEILING_KEY = "gain_iou_oracle"
# translator -> its mix arm: each one's gain over real_only, read as a share of the ceiling
TRANSLATOR_MIXES = {"essnet": "mix", "cyclegan": "mix_cyclegan"}


class TestSplitMismatch(ValueError):
    """The test split on disk is not the one the primary comparison was registered for."""


def check_test_split(cfg: EvaluateConfig, actual: str, where: str = "params.yaml") -> bool:
    """True when the primary comparison is registered for this split, False when none is registered."""
    if not cfg.test_split_sha256:
        return False
    if cfg.test_split_sha256 != actual:
        raise TestSplitMismatch(
            f"{where}: evaluate.test_split_sha256 = {cfg.test_split_sha256}: the test split on disk hashes to "
            f"{actual}. The primary comparison was registered for another split; register the new split "
            f"(set the key to {actual}) only before any test result on it has been read.")
    return True


Run = tuple[int, "int | None", dict[str, Any]]  # (U-Net seed, generator seed or None, scores)


def _matrix(runs: Sequence[Run], patients: list[str], metric: str) -> dict[int, tuple[int | None, np.ndarray]]:
    return {seed: (gen, np.array([s["per_patient"][p][metric] for p in patients])) for seed, gen, s in runs}


def _diff(a: dict[int, tuple[int | None, np.ndarray]], b: dict[int, tuple[int | None, np.ndarray]]) -> np.ndarray:
    """(generator seeds, U-Net seeds per generator seed, patients) of a - b, paired by U-Net seed and grouped
    by the generator seed either side trained on; an arm without seeds (atlas) broadcasts."""
    seeds = sorted(set(a) & set(b)) or sorted(a if len(a) > 1 else b)
    pick = lambda m, s: m[s] if s in m else next(iter(m.values()))  # noqa: E731
    groups: dict[int, list[np.ndarray]] = {}
    for s in seeds:
        (gen_a, va), (gen_b, vb) = pick(a, s), pick(b, s)
        gen = gen_a if gen_a is not None else gen_b
        groups.setdefault(-1 if gen is None else gen, []).append(va - vb)
    per_group = min(len(g) for g in groups.values())  # balanced by the params rule on essnet.seeds
    return np.stack([np.stack(g[:per_group]) for _, g in sorted(groups.items())])


def compare_arms(scores_by_arm: Mapping[str, Sequence[Run]], cfg: EvaluateConfig, seed: int,
                 registered: bool) -> dict[str, Any]:
    """`scores_by_arm[arm]`: (U-Net seed, generator seed, `segmentation_scores` result) per trained model."""
    summary: dict[str, dict[str, float]] = {}
    for arm, runs in scores_by_arm.items():
        summary[arm] = {k: float(np.mean([r[k] for _, _, r in runs])) for k in SUMMARY_KEYS}
        summary[arm]["iou_seed_std"] = float(np.std([r["iou"] for _, _, r in runs]))
        summary[arm]["n_seeds"] = len(runs)
        summary[arm]["n_generator_seeds"] = len({g for _, g, _ in runs if g is not None})
    patients = sorted(next(iter(scores_by_arm.values()))[0][2]["per_patient"])
    iou = {arm: _matrix(runs, patients, "iou") for arm, runs in scores_by_arm.items()}
    out: dict[str, Any] = {"test": summary, "patients": patients,
                           "per_patient_iou": {a: np.mean([v for _, v in m.values()], 0).tolist()
                                               for a, m in iou.items()}}
    primary = (cfg.primary_arm, cfg.primary_baseline)
    comparisons = list(COMPARISONS)
    if not any((a, b) == primary for _, a, b, _ in comparisons):
        comparisons.insert(0, ("gain_primary", *primary, f"{primary[0]} - {primary[1]}"))
    for key, a, b, label in comparisons:
        if a not in iou or b not in iou:
            continue
        is_primary = (a, b) == primary
        metric = cfg.primary_metric if is_primary else "iou"
        m = iou if metric == "iou" else {k: _matrix(r, patients, metric) for k, r in scores_by_arm.items()}
        gain = hierarchical_gain(_diff(m[a], m[b]), cfg.n_bootstrap, cfg.ci, seed=seed)
        out[key] = {**gain, "arm": a, "baseline": b, "label": label, "metric": metric,
                    "role": "primary" if is_primary else "secondary"}
        if is_primary:
            out["primary"] = {"key": key, "margin": cfg.primary_margin, "registered": registered,
                              "passes": bool(gain["ci_low"] > cfg.primary_margin)}
    if CEILING_KEY in out:
        out["ceiling"] = {**out[CEILING_KEY], "key": CEILING_KEY,
                          "shows_translation_value": bool(out[CEILING_KEY]["ci_low"] > 0)}
        out["share_of_ceiling"] = shares_of_ceiling(iou, cfg.n_bootstrap, cfg.ci, seed)
    return out


def shares_of_ceiling(iou: Mapping[str, dict[int, tuple[int | None, np.ndarray]]], n_resamples: int, ci: float,
                      seed: int) -> dict[str, dict[str, Any]]:
    """Per translator with a trained mix: (its mix - real_only) / (mix_oracle - real_only), paired by U-Net
    seed (replicate r of the mix trains on generator seed r), with an interval from one bootstrap."""
    base, oracle = iou["real_only"], iou["mix_oracle"]
    out = {}
    for translator, mix in TRANSLATOR_MIXES.items():
        if mix not in iou:
            continue
        seeds = sorted(set(iou[mix]) & set(base) & set(oracle))
        gain = np.stack([iou[mix][s][1] - base[s][1] for s in seeds])
        ceiling = np.stack([oracle[s][1] - base[s][1] for s in seeds])
        out[translator] = {**share_of_ceiling(gain, ceiling, n_resamples, ci, seed), "arm": mix}
    return out


def per_patient_rows(arm: str, seed: int, scores: dict[str, Any], generator_seed: int | None = None
                     ) -> list[dict[str, Any]]:
    gen = "" if generator_seed is None else generator_seed
    return [{"arm": arm, "seed": seed, "generator_seed": gen, "patient": p, **v} for p, v in scores["per_patient"].items()]

"""Model cards: the descriptions the register stage writes on the registered models and each version.

What it was trained on, what it is for, its test metrics with intervals (from metrics.json), how it was
promoted, and what the numbers do not mean (the phantom / real-sample caveat). Plain Markdown, which
the MLflow UI renders.
"""
from __future__ import annotations

from typing import Any

from liversynth.tracking.registry import GateDecision

__all__ = ["CAVEATS", "model_description", "version_card"]

CAVEATS = {
    "phantom": ("Trained and tested on liversynth's built-in procedural phantom, not on real patients: the "
                "metrics show that the pipeline works, not that the model segments real livers. Do not apply "
                "it to real scans."),
    "real-sample": ("Trained on a smoke-test sample of real scans (TotalSegmentator test files) whose masks "
                    "are model outputs, not expert ground truth, and whose test slabs are the same person as "
                    "the training slabs: the metrics are not a result."),
}
_GENERAL = "Research use only; not a medical device. Check every mask before any use of it."

_MODELS = {
    "unet": ("2D MONAI U-Net liver segmenter for MRI (after Rafiq et al., 2025), trained on real MRI, mixed with "
             "EssNet-synthetic MRI made from labelled CT when that beats real MRI alone (each version's card "
             "says which). Input: raw axial MRI slices of one volume; output: a "
             "binary liver mask on the input grid (preprocessing is part of the model)."),
    "ct2mri": ("EssNet (Huo et al., 2018) CT->MRI generator: raw axial CT slices in HU -> MRI-like slices in "
               "[-1, 1] (the network's output range, -1 = background) on the input grid. Used to make the "
               "synthetic MRI the liversynth U-Net trains on; its images are not diagnostic MRI."),
}


def model_description(kind: str) -> str:
    return (f"{_MODELS[kind]}\n\nEach version is one liversynth pipeline run, registered together with its "
            f"{'CT->MRI generator' if kind == 'unet' else 'U-Net'} (tag `liversynth.unit`). Aliases: `challenger` "
            f"= newest, `champion` = promoted by the gate (tags `gate.*`). Load: see the README, section Using the champion.")


def _interval(d: dict[str, Any] | None, ci: float, scale: float = 100.0, unit: str = " IoU points") -> str:
    if not d or "mean" not in d:
        return "not recorded"
    return (f"{d['mean'] * scale:+.2f}{unit}, {ci:.0%} CI [{d.get('ci_low', float('nan')) * scale:+.2f}, "
            f"{d.get('ci_high', float('nan')) * scale:+.2f}] (paired bootstrap over {d.get('n', '?')} test patients)")


_ARMS = {"mix": "real MRI + EssNet-synthetic MRI (the mix)", "real_only": "real MRI only"}


def _arm_line(arm: str, metrics: dict[str, Any]) -> str:
    """Which arm this U-Net is, and the pre-registered comparison that chose it."""
    gain = metrics.get("gain_iou") or {}
    why = ("the mix beats real only by the margin" if arm == gain.get("arm", "mix")
           else "the mix does not beat real only by the margin, so the real-only U-Net is the one the evidence supports")
    return f"**Arm:** {_ARMS.get(arm, arm)}; chosen because {why} (gain above, tag `gate.reason`)."


def version_card(kind: str, metrics: dict[str, Any], *, dataset: str, train_patients: dict[str, list[str]],
                 test_patients: list[str], test_split_hash: str, decision: GateDecision,
                 training: dict[str, str]) -> str:
    """The description of one version; `training` holds run id, ratio, seed, val/test IoU of this model."""
    ci = float(metrics.get("ci", 0.95))
    test = metrics.get("test", {})
    arms = "\n".join(f"| {arm} | {v.get('iou', float('nan')):.4f} | {v.get('dice', float('nan')):.4f} | "
                     f"{v.get('iou_seed_std', float('nan')):.4f} |" for arm, v in test.items())
    counts = ", ".join(f"{len(v)} {k}" for k, v in train_patients.items())
    lines = [
        f"**{_MODELS[kind].split('. ')[0]}.**", "",  # the first sentence ("et al., 2025" holds no ". ")
        f"**Trained on** dataset `{dataset}`: {counts} patients "
        f"(ids in tag `data.train_patients`); training run `{training.get('training_run_id', '?')}`, "
        f"synthetic ratio {training.get('ratio', '?')}, seed {training.get('seed', '?')}.",
        f"**Intended use:** {'liver masks on axial MRI' if kind == 'unet' else 'CT->MRI translation for training data'}"
        f" in research pipelines. {_GENERAL}",
        f"**Tested on** {len(test_patients)} held-out real MRI patients (split hash `{test_split_hash}`).",
        "", "| arm (test, mean over seeds) | IoU | Dice | IoU seed std |", "|---|---|---|---|", arms, "",
        f"**Gain of the synthetic mix over real only:** {_interval(metrics.get('gain_iou'), ci)}.",
        *([_arm_line(training.get("arm", "mix"), metrics)] if kind == "unet" else []),
        f"This version: validation IoU {training.get('val_iou', '?')}, test IoU {training.get('test_iou', '?')}.",
        f"**Gate:** {'promoted to champion' if decision.promote else 'not promoted'} ({decision.reason}).",
        "", f"**Caveat:** {CAVEATS.get(dataset, 'Trained on your data: the metrics hold for data like its test split only.')}",
    ]
    return "\n".join(lines)

"""Evaluation figures: IoU versus mixing ratio, gains, arms (image grids and curves: liversynth.utils.figures)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from liversynth.utils.files import write_atomic_file

from liversynth.utils.figures import pyplot, save_figure as _save

__all__ = ["arm_bars", "gain_plot", "gain_vs_labelled", "iou_vs_ratio"]


def iou_vs_ratio(ratios: Sequence[float], ious: Sequence[float], best: float, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(5, 3.5))
    order = np.argsort(ratios)
    ax.plot(np.asarray(ratios)[order], np.asarray(ious)[order], "o-")
    ax.axvline(best, color="tab:green", linestyle="--", label=f"chosen ratio {best:g}")
    ax.set(title="Validation IoU versus synthetic:real ratio", xlabel="synthetic slices per real slice",
           ylabel="validation IoU (real MRI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def gain_plot(per_patient_real: Sequence[float], per_patient_mix: Sequence[float], gain: dict, path: Path) -> Path:
    """Per test patient IoU of both arms, paired, with the mean gain and its CI in the title."""
    fig, ax = pyplot().subplots(figsize=(5, 3.5))
    for a, b in zip(per_patient_real, per_patient_mix):
        ax.plot([0, 1], [a, b], "o-", color="tab:green" if b >= a else "tab:red", alpha=0.7)
    ax.set_xticks([0, 1], ["real only", "real + synthetic"])
    ax.set(ylabel="test IoU per patient",
           title=f"gain {100 * gain['mean']:+.2f} IoU pts "
                 f"[{100 * gain['ci_low']:+.2f}, {100 * gain['ci_high']:+.2f}]")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def arm_bars(per_patient_iou: dict[str, Sequence[float]], path: Path) -> Path:
    """Mean test IoU per arm with per-patient points: real only, EssNet mix, CycleGAN mix."""
    fig, ax = pyplot().subplots(figsize=(5, 3.5))
    names = list(per_patient_iou)
    for i, name in enumerate(names):
        values = np.asarray(per_patient_iou[name])
        ax.bar(i, values.mean(), color=["tab:gray", "tab:green", "tab:orange"][i % 3], alpha=0.6)
        ax.plot(np.full(values.shape, i) + np.linspace(-0.2, 0.2, len(values)), values, "k.", alpha=0.7)
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names])
    low = min(min(v) for v in per_patient_iou.values())
    ax.set(ylabel="test IoU (per patient, mean over seeds)", ylim=(max(0.0, low - 0.05), 1.0),
           title="Test IoU by training data")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def gain_vs_labelled(gains: dict[str, list[dict]], path: Path) -> Path:
    """Gain over real-only (IoU points) against the number of labelled real MRI patients, one line per
    arm, with its interval: where synthetic data stops helping."""
    fig, ax = pyplot().subplots(figsize=(6, 3.8))
    for i, (label, points) in enumerate(gains.items()):
        n = np.asarray([p["labelled_patients"] for p in points], float) * (1 + 0.03 * (i - len(gains) / 2))  # dodge
        mean = np.asarray([100 * p["mean"] for p in points])
        err = np.asarray([[100 * (p["mean"] - p["ci_low"]) for p in points],
                          [100 * (p["ci_high"] - p["mean"]) for p in points]])
        ax.errorbar(n, mean, yerr=err, fmt="o-", capsize=3, label=label)
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="labelled real MRI patients", ylabel="test IoU gain over real only (points)",
           title="Gain versus labelled patients (CI over patients and training seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def budget_axis(points: list[dict], path: Path) -> Path:
    """The translator-budget axis: fidelity against the oracle and the EssNet gain (with its interval)
    against the generator's CPU-minutes, each point labelled with its step: is more training worth it?"""
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(9, 3.5))
    cpu = [p["cpu_min"] for p in points]
    ssim = [p["fidelity_ssim"] for p in points]
    left.plot(cpu, ssim, "o-")
    left.set(xlabel="generator CPU-minutes", ylabel="SSIM against the oracle", title="Translation fidelity")
    gain = [p["gain_iou"] for p in points]
    err = [[100 * (g["mean"] - g["ci_low"]) for g in gain], [100 * (g["ci_high"] - g["mean"]) for g in gain]]
    right.errorbar(cpu, [100 * g["mean"] for g in gain], yerr=err, fmt="o-", capsize=3, label="EssNet mix")
    if all(p.get("ceiling") for p in points):
        right.plot(cpu, [100 * p["ceiling"]["mean"] for p in points], "k--", label="ceiling (oracle mix)")
    right.axhline(0, color="k", linewidth=0.8)
    right.set(xlabel="generator CPU-minutes", ylabel="test IoU gain over real only (points)", title="Gain")
    for ax, ys in ((left, ssim), (right, [100 * g["mean"] for g in gain])):
        ax.grid(alpha=0.3)
        for p, x, y in zip(points, cpu, ys):
            ax.annotate(f"step {p['step']}", (x, y), fontsize=7)
    right.legend(fontsize=8)
    return _save(fig, path)

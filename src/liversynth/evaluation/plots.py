"""Figures people would rather look at than read: image grids, curves, IoU versus mixing ratio."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from liversynth.utils.files import write_atomic_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["pyplot", "arm_bars", "curves", "gain_plot", "gain_vs_labelled", "image_grid", "iou_vs_ratio"]


def pyplot() -> Any:
    """matplotlib.pyplot on the headless backend (figures are files), imported on first use: the plotting
    stack takes a second to import, and a stage that draws nothing should not pay it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    write_atomic_file(Path(path), buf.getvalue())
    return Path(path)


def image_grid(columns: dict[str, tuple[np.ndarray, np.ndarray | None]], path: Path, rows: int = 4) -> Path:
    """Columns of slices (e.g. CT | synthetic MRI | real MRI), each with an optional liver contour."""
    names = list(columns)
    fig, axes = pyplot().subplots(rows, len(names), figsize=(2.2 * len(names), 2.2 * rows), squeeze=False)
    for c, name in enumerate(names):
        images, labels = columns[name]
        pick: np.ndarray | list[int] = np.linspace(0, len(images) - 1, rows).astype(int) if len(images) else []
        for r in range(rows):
            ax = axes[r, c]
            ax.axis("off")
            if r < len(pick):
                ax.imshow(np.asarray(images[pick[r]]).squeeze(), cmap="gray", vmin=-1, vmax=1)
                if labels is not None and np.asarray(labels[pick[r]]).any():
                    ax.contour(np.asarray(labels[pick[r]]).squeeze(), levels=[0.5], colors="lime", linewidths=0.8)
            if r == 0:
                ax.set_title(name, fontsize=9)
    return _save(fig, path)


def curves(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path, title: str,
           xlabel: str = "step", ylabel: str = "loss") -> Path:
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, linewidth=1.2)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


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
        n = np.asarray([p["labelled"] for p in points], float) * (1 + 0.03 * (i - len(gains) / 2))  # dodge
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

"""Figures drawn without pipeline knowledge: image grids and curves, written atomically as PNG.

Here, at the bottom, because training stages draw them too (train_essnet's loss curves and
translation grid) and must not depend on evaluation code for it.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from liversynth.utils.files import write_atomic_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["curves", "image_grid", "pyplot", "save_figure"]


def pyplot() -> Any:
    """matplotlib.pyplot on the headless backend (figures are files), imported on first use: the plotting
    stack takes a second to import, and a stage that draws nothing should not pay it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path) -> Path:
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
    return save_figure(fig, path)


def curves(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path, title: str,
           xlabel: str = "step", ylabel: str = "loss") -> Path:
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, linewidth=1.2)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)

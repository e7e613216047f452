"""A figure of a segmented scan: the slices with most liver, the predicted mask (red) and, where
known, the reference mask (green) as contours."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from liversynth.utils.files import write_atomic_file

__all__ = ["overlay_figure"]


def overlay_figure(image: np.ndarray, mask: np.ndarray, path: Path, title: str,
                   reference: np.ndarray | None = None, n: int = 4) -> Path:
    """Display-orientation (Z, H, W) image and masks -> PNG of the `n` slices with the most liver."""
    import matplotlib  # here: the plotting stack takes a second to import

    matplotlib.use("Agg")  # headless: figures are files
    import matplotlib.pyplot as plt
    area = mask.reshape(len(mask), -1).sum(1) + (0 if reference is None else reference.reshape(len(mask), -1).sum(1))
    picks = sorted(np.argsort(-area, kind="stable")[: min(n, len(mask))].tolist())
    lo, hi = np.percentile(image, (1, 99))
    fig, axes = plt.subplots(1, len(picks), figsize=(2.6 * len(picks), 3.0), squeeze=False)
    for ax, z in zip(axes[0], picks):
        ax.imshow(image[z], cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6))
        for m, colour in ((reference, "lime"), (mask, "red")):
            if m is not None and m[z].any():
                ax.contour(m[z].astype(float), levels=[0.5], colors=colour, linewidths=1.0)
        ax.set_title(f"slice {z}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title + ("\nred: model, green: reference mask" if reference is not None else "\nred: model"),
                 fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic_file(Path(path), buf.getvalue())
    return Path(path)

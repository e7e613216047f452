"""The U-Net trainings of the grid (train_unet, study) as plain functions of names and numbers, so any task runner can send them
to a worker process: each loads its inputs from the prepared data on disk, trains (resuming its own
checkpoint), writes its weights and returns what the stage logs. Nothing here tracks or prints runs:
tracking stays in the flow, outside the loops.

A cell's result depends only on its arguments and the worker's thread count (params.yaml `runtime:`),
never on which worker ran it or what ran there before (tests/test_grid.py).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liversynth import paths
from liversynth.config import UNetConfig
from liversynth.data.arms import arm, unet_arms
from liversynth.data.slice_set import SliceSet, first_patients, translation_mri
from liversynth.models.weights import save_weights
from liversynth.training.grid import Cell

__all__ = ["UNetCell", "arm_cells", "grid_cells", "unet_cell", "unet_data"]


@dataclass(frozen=True)
class UNetCell:
    """One U-Net of the benchmark: an arm, its U-Net seed, the generator seed of its synthetic source
    (None for arms without one), the mixing ratio and the config (tuned lr/steps; its `labelled_patients` is the cell's number of
    labelled real MRI patients, None for all)."""

    arm: str
    seed: int
    generator_seed: int | None
    ratio: float
    cfg: UNetConfig
    generator_step: int | None = None  # the study's budget axis: the generator as it was at this step

    @property
    def key(self) -> str:
        gen = "" if self.generator_seed is None else f" gen={self.generator_seed}"
        n = "" if self.cfg.labelled_patients is None else f" n={self.cfg.labelled_patients}"
        at = "" if self.generator_step is None else f" step={self.generator_step}"
        return f"{self.arm} seed={self.seed}{gen}{n}{at}"

    @property
    def file_stem(self) -> str:
        return self.key.replace(" ", "-").replace("=", "")


def unet_data(cell: UNetCell) -> tuple[SliceSet, SliceSet | None, SliceSet]:
    """(training slices, extra slices mixed in or None, validation slices) of a cell."""
    spec = arm(cell.arm)
    real = first_patients(SliceSet.load(paths.PREPARED / "mri_train"), cell.cfg.labelled_patients)
    val = SliceSet.load(paths.PREPARED / "mri_val")
    source: SliceSet | None = None
    if spec.source in paths.VARIANTS:
        assert cell.generator_seed is not None, f"{cell.key}: a synthetic arm needs its generator seed"
        source = SliceSet.load(paths.synthetic_dir(spec.source, cell.generator_seed) if cell.generator_step is None
                               else paths.budget_synthetic_dir(spec.source, cell.generator_seed, cell.generator_step))
    elif spec.source == "ct":
        source = SliceSet.load(paths.PREPARED / "ct_train")
    elif spec.source == "oracle":
        source = SliceSet.load(paths.ORACLE)  # aligned with ct_train, CT labels kept
    elif spec.source == "histmatch":
        from liversynth.synthesis.controls import histogram_matched  # here: MONAI is slow to import

        source = histogram_matched(SliceSet.load(paths.PREPARED / "ct_train"), translation_mri(paths.PREPARED))
    if not spec.real:
        assert source is not None
        return source, None, val
    return real, source, val


def unet_cell(cell: UNetCell, out_dir: Path, checkpoint_dir: Path,
              on_metrics: Callable[[int, Mapping[str, float]], None] | None = None) -> dict[str, Any]:
    """Train one U-Net; weights to out_dir/<arm-seed...>.pt; returns its model record and history.
    `on_metrics(step, row)` gets train_loss, val_iou and val_dice at every evaluation as they come, and
    best_val_iou at the end."""
    from liversynth.training.unet import train_unet  # here, not at import: generator workers skip MONAI

    def on_eval(step: int, row: Mapping[str, float]) -> None:
        if on_metrics is not None:
            on_metrics(step, {k: v for k, v in row.items() if k != "step"})

    real, extra, val = unet_data(cell)
    result = train_unet(real, extra, cell.ratio, cell.cfg, seed=cell.seed, val=val, name=f"unet {cell.key}",
                        checkpoint=Path(checkpoint_dir) / f"{cell.file_stem}.pt", on_eval=on_eval)
    if on_metrics is not None:
        on_metrics(cell.cfg.steps, {"best_val_iou": result.best_val_iou})
    path = Path(out_dir) / f"{cell.file_stem}.pt"
    save_weights(result.model, path)
    record = {"arm": cell.arm, "seed": cell.seed, "generator_seed": cell.generator_seed, "ratio": cell.ratio,
              "labelled_patients": cell.cfg.labelled_patients, "generator_step": cell.generator_step,
              "lr": cell.cfg.lr, "steps": cell.cfg.steps, "path": str(path),
              "val_iou": result.best_val_iou, "resumed_from": result.resumed_from, "key": cell.key}
    return {"model": record, "history": result.history}


def arm_cells(cfg: UNetConfig, tune: dict[str, Any], unet_seeds: tuple[int, ...],
              generator_seeds: tuple[int, ...], labelled_patients: int | None, oracle: bool = False) -> list[UNetCell]:
    """Every arm x U-Net seed. The real-only baseline trains with its own tuned lr/steps, every other
    arm with the mix's (ratio, lr, steps) tuned for EssNet. U-Net seed i of an arm with a synthetic
    source trains on generator seed i (or the only one): each replicate redraws both randomnesses.
    `oracle`: add the oracle arms (phantom only), trained with the mix's settings like every control."""
    cfg = cfg.model_copy(update={"labelled_patients": labelled_patients})
    mix = cfg.model_copy(update={"lr": float(tune.get("mix", {}).get("lr", cfg.lr)),
                                 "steps": int(tune.get("mix", {}).get("steps", cfg.steps))})
    base = cfg.model_copy(update={"lr": float(tune.get("baseline", {}).get("lr", cfg.lr)),
                                  "steps": int(tune.get("baseline", {}).get("steps", cfg.steps))})
    ratio = float(tune["best_ratio"])
    cells = []
    for i, seed in enumerate(unet_seeds):
        for spec, r in unet_arms(ratio, oracle).values():
            gen = generator_seeds[i % len(generator_seeds)] if spec.source in paths.VARIANTS else None
            cells.append(UNetCell(spec.name, seed, gen, r, base if spec.name == "real_only" else mix))
    return cells


def grid_cells(cells: list[UNetCell], out_dir: Path, checkpoint_dir: Path) -> list[Cell]:
    """The cells as liversynth.training.grid cells (for run_grid), their checkpoint folder made.
    (A tracker wraps each one's function to stream it to its run: liversynth.tracking.unet_runs.)"""
    Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    return [Cell(c.key, unet_cell, {"cell": c, "out_dir": out_dir, "checkpoint_dir": checkpoint_dir}) for c in cells]

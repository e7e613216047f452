"""MLflow runs of the U-Net cells (train_unet, study): one live run per cell, nested under the stage's,
opened by the worker that trains it and streamed while it trains (liversynth.tracking.live); the cell's
data are logged as the run's MLflow inputs once the grid is done.

In the library rather than in flows/train_unet.py so that the study flow uses it without importing
another stage's flow (flows import liversynth and flows.common, never each other).
"""
from __future__ import annotations

from pathlib import Path

from mlflow.entities import Run

from liversynth import paths
from liversynth.data.arms import arm
from liversynth.tracking.lineage import lock_hash
from liversynth.tracking.live import child_run, tracked_cell
from liversynth.tracking.runs import log_dataset
from liversynth.training.grid import Cell
from liversynth.training.unet_cells import UNetCell, grid_cells, unet_data

__all__ = ["log_unet_inputs", "tracked_unet_cells"]


def tracked_unet_cells(parent: Run, stage: str, cells: list[UNetCell], out_dir: Path, checkpoint_dir: Path,
                       key: str) -> list[Cell]:
    """The grid cells of `cells`, each opening its own live run `unet[<cell key>]` (tag kind=unet) in the
    worker; the run id is recorded beside the cell's checkpoint, so a resumed cell continues its run.
    `key` is the stage's identity of this work (params, data)."""
    wrapped = []
    for cell, plain in zip(cells, grid_cells(cells, out_dir, checkpoint_dir)):
        run = child_run(parent, f"unet[{cell.key}]", {"kind": "unet", "arm": cell.arm, "stage": stage},
                        {"arm": cell.arm, "ratio": cell.ratio, "seed": cell.seed, "generator_seed": cell.generator_seed,
                         "labelled_patients": cell.cfg.labelled_patients,
                         **({"generator_step": cell.generator_step} if cell.generator_step else {}),
                         **{f"unet.{k}": v for k, v in cell.cfg.model_dump().items()}},
                        record=Path(checkpoint_dir) / f"{cell.file_stem}.mlflow_run", key=f"{key}:{cell.key}")
        wrapped.append(Cell(plain.key, tracked_cell, {"run": run, "fn": plain.fn, "kwargs": plain.kwargs}))
    return wrapped


def log_unet_inputs(cells: list[UNetCell], results: list[dict]) -> list[dict]:
    """Each trained cell's data as inputs of its run (the runs stay as they are: FINISHED, their own
    times); returns the model records with their run ids."""
    inputs = _CellInputs()
    models = []
    for cell, result in zip(cells, results):
        inputs.log(cell, result["run_id"])
        models.append({**result["model"], "run_id": result["run_id"]})
    return models


class _CellInputs:
    """Logs a cell's data as MLflow inputs, each with DVC's md5 of its folder as digest. The slices are
    loaded (and CT histogram-matched) once per distinct source, not once per cell: many cells share them."""

    def __init__(self) -> None:
        self.prepared = lock_hash(paths.PREPARED)
        self.loaded: dict[tuple, tuple] = {}
        self.synthetic_md5: dict[str, str] = {}  # DVC's md5 per synthetic source: dvc.lock read once each

    def log(self, cell: UNetCell, run_id: str) -> None:
        spec = arm(cell.arm)
        key = (spec.source, spec.real, cell.generator_seed, cell.cfg.labelled_patients, cell.generator_step)
        if key not in self.loaded:
            self.loaded[key] = unet_data(cell)
        real, extra, val = self.loaded[key]
        sets = [("mri_val", paths.PREPARED / "mri_val", self.prepared, "validation", val)]
        if spec.real:
            sets.append(("mri_train", paths.PREPARED / "mri_train", self.prepared, "training", real))
        if spec.source and (cell.ratio > 0 or not spec.real):
            slices = extra if spec.real and extra is not None else real
            if spec.source in paths.VARIANTS and cell.generator_seed is not None and cell.generator_step is not None:
                sets.append((f"synthetic_{spec.source}_step{cell.generator_step}",
                             paths.budget_synthetic_dir(spec.source, cell.generator_seed, cell.generator_step),
                             "study", "training", slices))
            elif spec.source in paths.VARIANTS and cell.generator_seed is not None:
                if spec.source not in self.synthetic_md5:
                    self.synthetic_md5[spec.source] = lock_hash(paths.synthetic_root(spec.source))
                sets.append((f"synthetic_{spec.source}", paths.synthetic_dir(spec.source, cell.generator_seed),
                             self.synthetic_md5[spec.source], "training", slices))
            elif spec.source == "oracle":
                sets.append(("source_oracle", paths.ORACLE, lock_hash(paths.ORACLE), "training", slices))
            else:
                sets.append((f"source_{spec.source}", paths.PREPARED / "ct_train", self.prepared, "training",
                             slices))
        for name, path, digest, context, data in sets:
            log_dataset(name, str(path), digest, context, data.images, data.labels, run_id=run_id)

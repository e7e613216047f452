"""MLflow runs of trained U-Net cells (train_unet, study): one nested run per cell, logged after the
grid has trained (tracking stays outside the loops), with the cell's data as MLflow inputs.

In the library rather than in flows/train_unet.py so that the study flow uses it without importing
another stage's flow (flows import liversynth and flows.common, never each other).
"""
from __future__ import annotations

import functools

import mlflow

from liversynth import paths
from liversynth.data.arms import arm
from liversynth.tracking.lineage import lock_hash
from liversynth.tracking.runs import log_child_run, log_dataset
from liversynth.training.unet_cells import UNetCell, unet_data

__all__ = ["log_unet_runs"]


def log_unet_runs(parent: mlflow.ActiveRun, stage: str, cells: list[UNetCell], results: list[dict]) -> list[dict]:
    """One nested MLflow run per trained cell (after training: tracking stays outside the loops);
    returns the model records with their run ids."""
    lineage = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
    inputs = _CellInputs()
    models = []
    for cell, result in zip(cells, results):
        m = dict(result["model"])
        tags = {**lineage, "kind": "unet", "arm": cell.arm, "stage": stage}
        if m["resumed_from"]:
            tags["resumed_from_step"] = str(m["resumed_from"])
        curves = [(int(r["step"]), {k: r[k] for k in ("train_loss", "val_iou", "val_dice") if k in r})
                  for r in result["history"]]
        m["run_id"] = log_child_run(parent.info.run_id, f"unet[{cell.key}]", tags,
                                    {"arm": cell.arm, "ratio": cell.ratio, "seed": cell.seed,
                                     "generator_seed": cell.generator_seed,
                                     "labelled_patients": cell.cfg.labelled_patients,
                                     **({"generator_step": cell.generator_step} if cell.generator_step else {}),
                                     **{f"unet.{k}": v for k, v in cell.cfg.model_dump().items()}},
                                    curves, {"val_iou": m["val_iou"]}, inside=functools.partial(inputs.log, cell))
        models.append(m)
    return models


class _CellInputs:
    """Logs a cell's data as MLflow inputs, each with DVC's md5 of its folder as digest. The slices are
    loaded (and CT histogram-matched) once per distinct source, not once per cell: many cells share them."""

    def __init__(self) -> None:
        self.prepared = lock_hash(paths.PREPARED)
        self.loaded: dict[tuple, tuple] = {}
        self.synthetic_md5: dict[str, str] = {}  # DVC's md5 per synthetic source: dvc.lock read once each

    def log(self, cell: UNetCell) -> None:
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
            log_dataset(name, str(path), digest, context, data.images, data.labels)

"""Stage `train_unet`: U-Nets per seed for every arm of liversynth.training.arms: real MRI only (with its
own tuned lr/steps), real + EssNet-synthetic MRI at the tuned ratio, and the controls (CycleGAN
synthetic, raw CT, histogram-matched CT, synthetic only) with the mix's settings; on the phantom also the
oracle arms (real + oracle translation, oracle only: data/oracle), the ceiling of what translation can add.

All arms share seeds and augmentation, so their test scores can be compared patient by patient. U-Net
seed i of a synthetic arm trains on generator seed i (`essnet.seeds`). The cells train at once in
worker processes (flows.common); each becomes an MLflow run (`unet[mix seed=1 gen=1]`, tag kind=unet)
with IoU/Dice curves on the validation split, nested under the stage's run.

Each cell checkpoints under .checkpoints/unet/ (outside DVC's outputs, which DVC deletes before a
rerun), so a killed stage continues on the next `dvc repro`: finished cells restore from their final
checkpoint, the interrupted one resumes. The checkpoints are deleted once the whole stage succeeded.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mlflow
from prefect import flow

from flows.common import grid_map, load_params, stage_run, with_workers
from liversynth import paths
from liversynth.config import Params
from liversynth.data.oracle_set import oracle_absent_reason
from liversynth.tracking.lineage import lock_hash
from liversynth.tracking.runs import log_child_run, log_dataset, recorded_run
from liversynth.training.arms import arm, unet_arms
from liversynth.training.cells import UNetCell, benchmark_cells, unet_cell, unet_data
from liversynth.training.grid import Cell, run_grid
from liversynth.utils.files import wide_means, write_csv, write_json
from liversynth.utils.hashing import fingerprint

__all__ = ["log_unet_runs", "train_cells", "train_unet_flow"]

CHECKPOINTS = paths.CHECKPOINTS / "unet"
HISTORY_FIELDS = ["arm", "seed", "generator_seed", "labelled", "step", "train_loss", "val_iou", "val_dice"]


def train_cells(params: Params, cells: list[UNetCell], out_dir: Path, checkpoints: Path) -> list[dict[str, Any]]:
    """Every cell through the stage's task runner; results in the cells' order."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    grid = [Cell(c.key, unet_cell, {"cell": c, "out_dir": out_dir, "checkpoint_dir": checkpoints}) for c in cells]
    return list(run_grid(grid, grid_map(params)).values())


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
                                     "generator_seed": cell.generator_seed, "labelled_patients": cell.labelled,
                                     **({"generator_step": cell.generator_step} if cell.generator_step else {}),
                                     **{f"unet.{k}": v for k, v in cell.cfg.model_dump().items()}},
                                    curves, {"val_iou": m["val_iou"]}, inside=lambda c=cell: inputs.log(c))
        models.append(m)
    return models


class _CellInputs:
    """Logs a cell's data as MLflow inputs, each with DVC's md5 of its folder as digest. The slices are
    loaded (and CT histogram-matched) once per distinct source, not once per cell: many cells share them."""

    def __init__(self) -> None:
        self.prepared = lock_hash(paths.PREPARED)
        self.loaded: dict[tuple, tuple] = {}

    def log(self, cell: UNetCell) -> None:
        spec = arm(cell.arm)
        key = (spec.source, spec.real, cell.generator_seed, cell.labelled, cell.generator_step)
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
                sets.append((f"synthetic_{spec.source}", paths.synthetic_dir(spec.source, cell.generator_seed),
                             lock_hash(paths.synthetic_root(spec.source)), "training", slices))
            elif spec.source == "oracle":
                sets.append(("source_oracle", paths.ORACLE, lock_hash(paths.ORACLE), "training", slices))
            else:
                sets.append((f"source_{spec.source}", paths.PREPARED / "ct_train", self.prepared, "training",
                             slices))
        for name, path, digest, context, data in sets:
            log_dataset(name, str(path), digest, context, data.images, data.labels)


def history_rows(results: list[dict]) -> list[dict]:
    return [{**{k: r["model"][k] for k in ("arm", "seed", "generator_seed", "labelled")}, **row}
            for r in results for row in r["history"]]


@flow(name="train_unet")
def train_unet_flow() -> list[dict]:
    params = load_params()
    tune = json.loads(paths.TUNE_RESULT.read_text())
    oracle = oracle_absent_reason(params.data.dataset) is None
    cells = benchmark_cells(params.unet, tune, params.evaluate.seeds, params.essnet.seeds,
                            params.unet.labelled_patients, oracle)
    synthetic_md5 = lock_hash(paths.synthetic_root("essnet"))
    key = fingerprint(params.section("unet"), params.evaluate.seeds, params.essnet.seeds, tune, synthetic_md5,
                      lock_hash(paths.PREPARED), lock_hash(paths.ORACLE) if oracle else None)
    start = lambda run_id: stage_run(params, "train_unet", ("unet",), run_id, synthetic_md5=synthetic_md5)  # noqa: E731
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    with recorded_run(CHECKPOINTS / "train_unet.mlflow_run", key, start) as parent:
        results = train_cells(params, cells, paths.UNET_DIR, CHECKPOINTS)
        models = log_unet_runs(parent, "train_unet", cells, results)
    history = history_rows(results)
    write_json(paths.UNET_MODELS, models)
    write_csv(paths.UNET_HISTORY, history, HISTORY_FIELDS)
    arms = list(unet_arms(float(tune["best_ratio"]), oracle))
    write_csv(paths.UNET_VAL_IOU, wide_means(history, "step", "arm", "val_iou", arms), ["step", *arms])
    # Finished: a later run must start fresh, not "resume" into other data or params.
    shutil.rmtree(CHECKPOINTS, ignore_errors=True)
    return models


if __name__ == "__main__":
    with_workers(train_unet_flow, load_params())()

"""Stage `train_unet`: U-Nets per seed for every arm of liversynth.data.arms: real MRI only (with its
own tuned lr/steps), real + EssNet-synthetic MRI at the tuned ratio, and the controls (CycleGAN
synthetic, raw CT, histogram-matched CT, synthetic only) with the mix's settings; on the phantom also the
oracle arms (real + oracle translation, oracle only: data/oracle), the ceiling of what translation can add.

All arms share seeds and augmentation, so their test scores can be compared patient by patient. U-Net
seed i of a synthetic arm trains on generator seed i (`essnet.seeds`). The cells train at once in
worker processes (flows.common); each has its MLflow run (`unet[mix seed=1 gen=1]`, tag kind=unet) from
the moment it starts, nested under the stage's run, its IoU/Dice on the validation split streamed while
it trains (liversynth.tracking.live).

Each cell checkpoints under .checkpoints/unet/ (outside DVC's outputs, which DVC deletes before a
rerun), so a killed stage continues on the next `dvc repro`: finished cells restore from their final
checkpoint, the interrupted one resumes. The checkpoints are deleted once the whole stage succeeded.
"""
from __future__ import annotations

import json
import shutil

from prefect import flow

from flows.common import grid_map, link_run, load_params, start_stage, with_workers
from liversynth import paths
from liversynth.data.arms import unet_arms
from liversynth.data.oracle_set import oracle_absent_reason
from liversynth.tracking.lineage import lock_hash
from liversynth.tracking.runs import recorded_run, stage_run
from liversynth.tracking.unet_runs import log_unet_inputs, tracked_unet_cells
from liversynth.training.grid import run_grid
from liversynth.training.unet_cells import arm_cells
from liversynth.utils.files import wide_means, write_csv, write_json
from liversynth.utils.hashing import fingerprint

__all__ = ["train_unet_flow"]

CHECKPOINTS = paths.CHECKPOINTS / "unet"
HISTORY_FIELDS = ["arm", "seed", "generator_seed", "labelled_patients", "step", "train_loss", "val_iou", "val_dice"]


def history_rows(results: list[dict]) -> list[dict]:
    return [{**{k: r["model"][k] for k in ("arm", "seed", "generator_seed", "labelled_patients")}, **row}
            for r in results for row in r["history"]]


@flow(name="train_unet")
def train_unet_flow() -> list[dict]:
    params = start_stage()
    tune = json.loads(paths.TUNE_RESULT.read_text())
    oracle = oracle_absent_reason(params.data.dataset) is None  # the ceiling arms: phantom only
    cells = arm_cells(params.unet, tune, params.evaluate.seeds, params.essnet.seeds,
                      params.unet.labelled_patients, oracle)
    synthetic_md5 = lock_hash(paths.synthetic_root("essnet"))
    key = fingerprint(params.section("unet"), params.evaluate.seeds, params.essnet.seeds, tune, synthetic_md5,
                      lock_hash(paths.PREPARED), lock_hash(paths.ORACLE) if oracle else None)
    start = lambda run_id: stage_run(params, "train_unet", ("unet",), run_id,  # noqa: E731
                                     synthetic_md5=synthetic_md5, on_open=link_run)
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    with recorded_run(CHECKPOINTS / "train_unet.mlflow_run", key, start) as parent:
        grid = tracked_unet_cells(parent, "train_unet", cells, paths.UNET_DIR, CHECKPOINTS, key)
        results = list(run_grid(grid, grid_map(params)).values())
        models = log_unet_inputs(cells, results)
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

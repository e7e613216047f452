"""Stage `tune_mix`: Optuna picks the synthetic-to-real mixing ratio on the real-MRI validation split.

The test split is never read here. Each trial is an MLflow run nested under the stage's run.
Trials run concurrently in LIVERSYNTH_WORKERS worker processes (`make tune WORKERS=n`) that share
one study storage; the stage's outputs are written once, by this flow, after every worker is done.
LIVERSYNTH_TASK_RUNNER picks the engine: `dask` (default; a local Dask cluster, or the existing one
at LIVERSYNTH_DASK_ADDRESS whose workers may sit on many machines), `processes` or `threads`.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import mlflow
import optuna
from prefect import flow, task
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from flows.common import load_params
from liversynth.config import Params
from liversynth.data.slice_set import SliceSet
from liversynth.paths import CHECKPOINTS, PREPARED, TUNE_RESULT, TUNE_TRIALS, synthetic_dir
from liversynth.tracking.runs import lineage_tags, setup_mlflow, stage_run
from liversynth.training.mix_ratio_study import best_ratio, open_study, run_study, trial_checkpoint, trial_table
from liversynth.training.unet import train_unet
from liversynth.utils.files import write_csv, write_json
from liversynth.utils.hashing import code_fingerprint, fingerprint

SYNTHETIC = synthetic_dir("essnet")
# A trial checkpoints like the other trainings: a killed trial is re-queued and its rerun resumes.
TRIAL_CHECKPOINTS = CHECKPOINTS / "tune"


# The code a trial's result depends on: a change to any of it starts a new study, never reusing old trials.
_TRIAL_CODE = tuple(Path(p) for p in ("src/liversynth/training", "src/liversynth/models", "src/liversynth/inference",
                                      "src/liversynth/runtime", "src/liversynth/evaluation/metrics.py",
                                      "src/liversynth/config.py", "flows/tune_mix.py"))


def study_name(params: Params) -> str:
    """Trials are only comparable for the same data, U-Net, grid, runtime and code: key the study on all."""
    return "tune_mix-" + fingerprint(params.section("unet"), params.section("tune"), params.seed,
                                     params.section("runtime"), code_fingerprint(*_TRIAL_CODE),
                                     SYNTHETIC / "images.npy", PREPARED / "mri_train/images.npy",
                                     PREPARED / "mri_val/labels.npy")


@task
def tune_worker(parent_run_id: str | None = None, n_trials: int | None = None) -> str:
    """Run queued trials of the shared study until none is left (or n_trials are done).

    Each worker trains with params.yaml's `runtime.threads`, so a trial's result does not depend on
    how many workers share the machine (give each worker that many cores).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = load_params()
    setup_mlflow(params)  # a Dask or pool worker is a fresh interpreter: point it at the tracking store
    real, val = SliceSet.load(PREPARED / "mri_train"), SliceSet.load(PREPARED / "mri_val")
    synthetic = SliceSet.load(SYNTHETIC)
    study = open_study(params.tune.storage, study_name(params), params.tune.ratios, params.tune.seed)

    def objective(ratio: float, trial: optuna.Trial) -> float:
        with mlflow.start_run(run_name=f"trial-{trial.number}-ratio-{ratio:g}", nested=True,
                              parent_run_id=parent_run_id,
                              tags={**lineage_tags(params, "tune_mix"), "kind": "unet", "arm": "trial"}):
            mlflow.log_params({"ratio": ratio, "seed": params.tune.seed, "trial": trial.number})
            result = train_unet(real, synthetic, ratio, params.unet, seed=params.tune.seed, val=val,
                                checkpoint=trial_checkpoint(TRIAL_CHECKPOINTS, study.study_name, ratio),
                                on_eval=lambda step, row: mlflow.log_metrics(row, step=step))
            if result.resumed_from:
                mlflow.set_tag("resumed_from_step", str(result.resumed_from))
            mlflow.log_metrics({"val_iou": result.best_val_iou,
                                "val_dice": max(r.get("val_dice", 0.0) for r in result.history)})
            trial.set_user_attr("val_dice", max(r.get("val_dice", 0.0) for r in result.history))
            return result.best_val_iou

    run_study(study, objective, n_trials)
    return study.study_name


def task_runner(workers: int) -> TaskRunner:
    """The engine that runs `workers` tune_worker tasks at once (see the module docstring)."""
    kind = os.environ.get("LIVERSYNTH_TASK_RUNNER", "dask")
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address := os.environ.get("LIVERSYNTH_DASK_ADDRESS"):
            return DaskTaskRunner(address=address)
        # Dask's INFO chatter: off here and, through the environment, in the worker processes.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        # One single-threaded Dask worker process per trial worker: U-Net training holds the GIL
        # often enough that threads would serialise it.
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None, "silence_logs": logging.WARNING})
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    raise ValueError(f"LIVERSYNTH_TASK_RUNNER={kind!r}: expected dask, processes or threads")


@flow(name="tune_mix")
def tune_mix_flow(workers: int = 1) -> dict:
    params = load_params()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with stage_run(params, "tune_mix", ("unet", "tune")) as run:
        limit = int(os.environ["LIVERSYNTH_TRIALS"]) if "LIVERSYNTH_TRIALS" in os.environ else None
        # Queue the grid here, once, before any worker starts (workers re-check it, harmlessly).
        name = open_study(params.tune.storage, study_name(params), params.tune.ratios, params.tune.seed).study_name
        if workers <= 1:
            tune_worker(run.info.run_id, limit)
        else:
            futures = [tune_worker.submit(run.info.run_id, limit) for _ in range(workers)]
            for future in futures:
                future.result()  # re-raises a worker's failure; its trial is re-queued next run
        study = open_study(params.tune.storage, name, params.tune.ratios, params.tune.seed)
        rows = trial_table(study)
        result = {"study": name, "best_ratio": best_ratio(study), "best_val_iou": study.best_value,
                  "baseline_val_iou": next((r["val_iou"] for r in rows if r["ratio"] == 0.0), None),
                  "trials": rows}
        mlflow.log_metrics({"best_ratio": result["best_ratio"], "best_val_iou": result["best_val_iou"]})
        mlflow.log_dict(result, "tune.json")
    write_json(TUNE_RESULT, result)
    write_csv(TUNE_TRIALS, rows, ["ratio", "val_iou", "val_dice", "trial"])
    shutil.rmtree(TRIAL_CHECKPOINTS, ignore_errors=True)  # every trial is complete in the study
    return result


if __name__ == "__main__":
    n = int(os.environ.get("LIVERSYNTH_WORKERS", "1"))
    (tune_mix_flow.with_options(task_runner=task_runner(n)) if n > 1 else tune_mix_flow)(workers=n)

"""Stage `tuning`: Optuna picks, on the real-MRI validation split, the synthetic-to-real mixing ratio and
learning rate of the mix, and the learning rate and steps of the real-only baseline, with the same
number of trials for each (params.yaml `tune:`).

The test split is never read here. Each trial is a live MLflow run (`trial[ratio=1 lr=0.001 steps=500]`)
nested under the stage's run, streamed while it trains; a re-queued trial that resumes its checkpoint
continues its run (liversynth.tracking.live). Trials run concurrently as tasks of the stage's task runner (one
`tune_worker` per worker process, flows.common) that share one study storage; the stage's outputs
are written once, by this flow, after every worker is done.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import mlflow
import optuna
from prefect import flow, task

from flows.common import load_params, start_stage, task_runner, with_workers, worker_count
from liversynth.config import Params, UNetConfig
from liversynth.data.slice_set import SliceSet, first_patients
from liversynth.paths import CHECKPOINTS, PREPARED, TUNE_RESULT, TUNE_TRIALS, synthetic_dir
from liversynth.tracking.live import LiveRun, tracked_cell
from liversynth.tracking.runs import lineage_tags, setup_mlflow, stage_run
from liversynth.training.tuning import (Point, best_point, best_ratio, open_study, point_label, points, run_trials,
                                        trial_checkpoint, trial_table)
from liversynth.training.unet import train_unet
from liversynth.utils.files import write_csv, write_json
from liversynth.utils.hashing import code_fingerprint, fingerprint
from liversynth.utils.imports import closure

__all__ = ["study_name", "task_runner", "trial_code", "tune_worker", "tuning_flow"]



def _synthetic(params: Params) -> Path:
    """The mix is tuned on the first generator seed's synthetic MRI (the others are its replicates)."""
    return synthetic_dir("essnet", params.essnet.seeds[0])

OnMetrics = Callable[[int, Mapping[str, float]], None]
# A trial checkpoints like the other trainings: a killed trial is re-queued and its rerun resumes.
TRIAL_CHECKPOINTS = CHECKPOINTS / "tune"


def trial_code() -> list[Path]:
    """The code a trial's result depends on: every file this stage's command may run, the same closure
    tests/test_dag.py checks dvc.yaml's deps against. A change to any of it starts a new study."""
    return sorted(closure(Path("."), "flows.tuning"))


def study_name(params: Params) -> str:
    """Trials are only comparable for the same data, U-Net, grid, runtime and code: key the study on all."""
    return "tuning-" + fingerprint(params.section("unet"), params.section("tune"), params.seed,
                                     params.section("runtime"), code_fingerprint(*trial_code()),
                                     _synthetic(params) / "images.npy", PREPARED / "mri_train/images.npy",
                                     PREPARED / "mri_val/labels.npy")


def grid_points(params: Params) -> list[Point]:
    return points(params.tune.ratios, params.tune.lrs, params.tune.baseline_steps, params.unet.steps)


def _trial(real: SliceSet, synthetic: SliceSet | None, ratio: float, cfg: UNetConfig, seed: int, val: SliceSet,
           checkpoint: Path, name: str, on_metrics: OnMetrics) -> dict:
    """One trial's U-Net, its evaluations streamed to `on_metrics` (the trial's live run)."""
    result = train_unet(real, synthetic, ratio, cfg, seed=seed, val=val, checkpoint=checkpoint, name=name,
                        on_eval=lambda step, row: on_metrics(step, {k: v for k, v in row.items() if k != "step"}))
    val_dice = max(r.get("val_dice", 0.0) for r in result.history)
    on_metrics(cfg.steps, {"best_val_iou": result.best_val_iou, "best_val_dice": val_dice})
    return {"val_iou": result.best_val_iou, "val_dice": val_dice, "resumed_from": result.resumed_from}


@task
def tune_worker(parent_run_id: str | None = None, n_trials: int | None = None) -> str:
    """Run queued trials of the shared study until none is left (or n_trials are done).

    Each worker trains with params.yaml's `runtime.threads`, so a trial's result does not depend on
    how many workers share the machine.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = start_stage()
    experiment_id = setup_mlflow(params)  # a Dask or pool worker is a fresh interpreter: point it at the store
    real = first_patients(SliceSet.load(PREPARED / "mri_train"), params.unet.labelled_patients)
    val, synthetic = SliceSet.load(PREPARED / "mri_val"), SliceSet.load(_synthetic(params))
    study = open_study(params.tune.storage, study_name(params), grid_points(params), params.tune.seed)

    def objective(point: Point, trial: optuna.Trial) -> float:
        ratio = float(point["ratio"])
        cfg = params.unet.model_copy(update={k: (int(v) if k == "steps" else float(v))
                                             for k, v in point.items() if k in ("lr", "steps")})
        checkpoint = trial_checkpoint(TRIAL_CHECKPOINTS, study.study_name, point)
        spec = LiveRun(mlflow.get_tracking_uri(), experiment_id, str(parent_run_id), f"trial[{point_label(point)}]",
                       {**lineage_tags(params, "tuning"), "kind": "unet", "arm": "trial"},
                       {**point, "seed": params.tune.seed, "trial": trial.number},
                       record=str(checkpoint.with_suffix(".mlflow_run")), key=f"{study.study_name}:{point_label(point)}")
        result = tracked_cell(spec, _trial, {"real": real, "synthetic": synthetic if ratio > 0 else None,
                                             "ratio": ratio, "cfg": cfg, "seed": params.tune.seed, "val": val,
                                             "checkpoint": checkpoint,
                                             "name": f"trial {trial.number} [{point_label(point)}]"})
        val_dice = result["val_dice"]
        trial.set_user_attr("val_dice", val_dice)
        return float(result["val_iou"])

    run_trials(study, objective, n_trials)
    return study.study_name


def _result(study: optuna.Study, params: Params) -> dict:
    """tune.json: the mix's and the baseline's chosen settings, and every trial."""
    rows = trial_table(study)
    mix: dict = {"ratio": best_ratio(study), "lr": params.unet.lr, "steps": params.unet.steps}
    baseline: dict = {"lr": params.unet.lr, "steps": params.unet.steps}
    if any(float(r["ratio"]) > 0 for r in rows):
        mix.update(best_point(study, baseline=False))
    baseline.update({k: v for k, v in best_point(study, baseline=True).items() if k != "ratio"})
    val = {p: max((r["val_iou"] for r in rows if (float(r["ratio"]) == 0) == (p == "baseline")), default=None)
           for p in ("baseline", "mix")}
    mix["steps"], baseline["steps"] = int(mix["steps"] or params.unet.steps), int(baseline["steps"] or params.unet.steps)
    return {"study": study.study_name, "best_ratio": mix["ratio"], "best_val_iou": val["mix"],
            "baseline_val_iou": val["baseline"], "mix": mix, "baseline": baseline, "trials": rows}


@flow(name="tuning")
def tuning_flow() -> dict:
    params = start_stage()
    workers = worker_count(params)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with stage_run(params, "tuning", ("unet", "tune")) as run:
        limit = int(os.environ["LIVERSYNTH_TRIALS"]) if "LIVERSYNTH_TRIALS" in os.environ else None
        # Queue the grid here, once, before any worker starts (workers re-check it, harmlessly).
        name = open_study(params.tune.storage, study_name(params), grid_points(params), params.tune.seed).study_name
        if workers <= 1:
            tune_worker(run.info.run_id, limit)
        else:
            futures = [tune_worker.submit(run.info.run_id, limit) for _ in range(workers)]
            for future in futures:
                future.result()  # re-raises a worker's failure; its trial is re-queued next run
        result = _result(open_study(params.tune.storage, name, grid_points(params), params.tune.seed), params)
        mlflow.log_metrics({k: float(result[k]) for k in ("best_ratio", "best_val_iou", "baseline_val_iou")
                            if result[k] is not None})
        mlflow.log_dict(result, "tune.json")
    write_json(TUNE_RESULT, result)
    write_csv(TUNE_TRIALS, result["trials"], ["ratio", "lr", "steps", "val_iou", "val_dice", "trial"])
    shutil.rmtree(TRIAL_CHECKPOINTS, ignore_errors=True)  # every trial is complete in the study
    return result


if __name__ == "__main__":
    with_workers(tuning_flow, load_params())()

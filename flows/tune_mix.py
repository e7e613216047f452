"""Stage `tune_mix`: Optuna picks the synthetic-to-real mixing ratio on the real-MRI validation split.

The test split is never read here. Each trial is an MLflow run nested under the stage's run.
Run more workers on the same study with `make tune WORKERS=n` (they share the journal storage).
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import mlflow
import optuna
from prefect import flow, task

from flows.common import fingerprint, load_params, stage_run
from flows.prepare import PREPARED
from flows.synthesize import SYNTHETIC
from liversynth.atomic import write_atomic_file, write_json
from liversynth.config import Params
from liversynth.segment import train_unet
from liversynth.slices import SliceSet
from liversynth.tuning import best_ratio, open_study, run_study, trial_table

TUNE_RESULT = Path("reports/tune.json")
TUNE_TRIALS = Path("reports/tune_trials.csv")


def study_name(params: Params) -> str:
    """Trials are only comparable for the same data, U-Net and grid: key the study on all three."""
    return "tune_mix-" + fingerprint(params.section("unet"), params.section("tune"), params.seed,
                                     Path(SYNTHETIC / "images.npy"), Path(PREPARED / "mri_train/images.npy"),
                                     Path(PREPARED / "mri_val/labels.npy"))


@task
def tune_worker(parent_run_id: str | None = None, n_trials: int | None = None) -> str:
    """Run trials on the shared study until its grid is covered (or n_trials are done)."""
    params = load_params()
    real, val = SliceSet.load(PREPARED / "mri_train"), SliceSet.load(PREPARED / "mri_val")
    synthetic = SliceSet.load(SYNTHETIC)
    study = open_study(params.tune.storage, study_name(params), params.tune.ratios, params.tune.seed)

    def objective(ratio: float, trial: optuna.Trial) -> float:
        with mlflow.start_run(run_name=f"trial-{trial.number}-ratio-{ratio:g}", nested=True,
                              parent_run_id=parent_run_id, tags={"stage": "tune_mix", "kind": "unet", "arm": "trial"}):
            mlflow.log_params({"ratio": ratio, "seed": params.tune.seed, "trial": trial.number})
            result = train_unet(real, synthetic, ratio, params.unet, seed=params.tune.seed, val=val,
                                on_eval=lambda step, row: mlflow.log_metrics(row, step=step))
            mlflow.log_metrics({"val_iou": result.best_val_iou,
                                "val_dice": max(r.get("val_dice", 0.0) for r in result.history)})
            trial.set_user_attr("val_dice", max(r.get("val_dice", 0.0) for r in result.history))
            return result.best_val_iou

    run_study(study, objective, n_trials)
    return study.study_name


@flow(name="tune_mix")
def tune_mix_flow() -> dict:
    params = load_params()
    with stage_run(params, "tune_mix", ("unet", "tune")) as run:
        limit = int(os.environ["LIVERSYNTH_TRIALS"]) if "LIVERSYNTH_TRIALS" in os.environ else None
        name = tune_worker(run.info.run_id, limit)
        study = open_study(params.tune.storage, name, params.tune.ratios, params.tune.seed)
        rows = trial_table(study)
        result = {"study": name, "best_ratio": best_ratio(study), "best_val_iou": study.best_value,
                  "baseline_val_iou": next((r["val_iou"] for r in rows if r["ratio"] == 0.0), None),
                  "trials": rows}
        mlflow.log_metrics({"best_ratio": result["best_ratio"], "best_val_iou": result["best_val_iou"]})
        mlflow.log_dict(result, "tune.json")
    write_json(TUNE_RESULT, result)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["ratio", "val_iou", "val_dice", "trial"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic_file(TUNE_TRIALS, buf.getvalue())
    return result


if __name__ == "__main__":
    tune_mix_flow()

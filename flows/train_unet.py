"""Stage `train_unet`: U-Nets per seed on real MRI only, real + EssNet-synthetic MRI at the tuned ratio,
and (the ablation) real + plain-CycleGAN-synthetic MRI at the same ratio.

All arms share seeds, steps and augmentation, so their test scores can be compared patient by
patient. Each model is its own MLflow run (tag kind=unet) with IoU/Dice curves on the validation split.

Each arm/seed checkpoints under .checkpoints/unet/ (outside DVC's outputs, which DVC deletes before
a rerun), so a killed stage continues on the next `dvc repro`: finished arms restore from their
final checkpoint, the interrupted one resumes, and their MLflow runs are reopened. The checkpoints
are deleted once the whole stage has succeeded.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import mlflow
from prefect import flow

from flows.common import fingerprint, load_params, lock_hash, save_run, saved_run, stage_run
from flows.prepare import PREPARED
from flows.synthesize import SYNTHETIC, synthetic_dir
from flows.tune_mix import TUNE_RESULT
from liversynth.atomic import write_atomic_file, write_json
from liversynth.segment import save_unet, train_unet
from liversynth.slices import SliceSet

UNET_DIR = Path("models/unet")
HISTORY = Path("reports/unet_history.csv")
CHECKPOINTS = Path(".checkpoints/unet")
STAGE_RUN_FILE = CHECKPOINTS / "train_unet.mlflow_run"


@flow(name="train_unet")
def train_unet_flow() -> list[dict]:
    params = load_params()
    ratio = float(json.loads(TUNE_RESULT.read_text())["best_ratio"])
    real, val = SliceSet.load(PREPARED / "mri_train"), SliceSet.load(PREPARED / "mri_val")
    # The ablation arm mixes plain-CycleGAN synthetic MRI at the ratio tuned for EssNet's.
    synthetic = {"essnet": SliceSet.load(SYNTHETIC), "cyclegan": SliceSet.load(synthetic_dir("cyclegan"))}
    arms = {"real_only": (0.0, "essnet"), "mix": (ratio, "essnet"), "mix_cyclegan": (ratio, "cyclegan")}
    models, history = [], []
    UNET_DIR.mkdir(parents=True, exist_ok=True)
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    synthetic_md5 = lock_hash(str(SYNTHETIC))
    key = fingerprint(params.section("unet"), params.evaluate.seeds, ratio, synthetic_md5,
                      lock_hash("data/prepared"))
    resume_id = saved_run(STAGE_RUN_FILE, key)
    with stage_run(params, "train_unet", ("unet",), resume_run_id=resume_id,
                   synthetic_md5=synthetic_md5) as parent:
        save_run(STAGE_RUN_FILE, key, parent.info.run_id)
        lineage = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
        for seed in params.evaluate.seeds:
            for arm, (r, source) in arms.items():
                checkpoint = CHECKPOINTS / f"{arm}-seed{seed}.pt"
                run_file = checkpoint.with_suffix(".mlflow_run")
                arm_key = fingerprint(key, parent.info.run_id, arm, seed)
                arm_run = saved_run(run_file, arm_key) if checkpoint.exists() else None
                with mlflow.start_run(run_id=arm_run, run_name=None if arm_run else f"unet-{arm}-seed{seed}",
                                      nested=True, parent_run_id=parent.info.run_id,
                                      tags={**lineage, "kind": "unet", "arm": arm}) as run:
                    save_run(run_file, arm_key, run.info.run_id)
                    mlflow.log_params({"arm": arm, "ratio": r, "seed": seed, "synthetic_source": source,
                                       **{f"unet.{k}": v for k, v in params.section("unet").items()}})
                    result = train_unet(real, synthetic[source], r, params.unet, seed=seed, val=val,
                                        checkpoint=checkpoint,
                                        on_eval=lambda step, row: mlflow.log_metrics(row, step=step))
                    if result.resumed_from:
                        mlflow.set_tag("resumed_from_step", str(result.resumed_from))
                    mlflow.log_metrics({"val_iou": result.best_val_iou})
                    path = UNET_DIR / f"{arm}-seed{seed}.pt"
                    save_unet(result.model, path)
                    models.append({"arm": arm, "seed": seed, "ratio": r, "path": str(path),
                                   "run_id": run.info.run_id, "val_iou": result.best_val_iou})
                    history += [{"arm": arm, "seed": seed, **row} for row in result.history]
    write_json(UNET_DIR / "models.json", models)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["arm", "seed", "step", "train_loss", "val_iou", "val_dice"])
    writer.writeheader()
    writer.writerows(history)
    write_atomic_file(HISTORY, buf.getvalue())
    # Finished: a later run must start fresh, not "resume" into other data or params.
    shutil.rmtree(CHECKPOINTS, ignore_errors=True)
    return models


if __name__ == "__main__":
    train_unet_flow()

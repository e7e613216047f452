"""Stage `train_unet`: U-Nets on real MRI only and on real + synthetic MRI at the tuned ratio, per seed.

Both arms share seeds, steps and augmentation, so their test scores can be compared patient by
patient. Each model is its own MLflow run (tag kind=unet) with IoU/Dice curves on the validation split.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import mlflow
from prefect import flow

from flows.common import load_params, lock_hash, stage_run
from flows.prepare import PREPARED
from flows.synthesize import SYNTHETIC
from flows.tune_mix import TUNE_RESULT
from liversynth.atomic import write_atomic_file, write_json
from liversynth.segment import save_unet, train_unet
from liversynth.slices import SliceSet

UNET_DIR = Path("models/unet")
HISTORY = Path("reports/unet_history.csv")


@flow(name="train_unet")
def train_unet_flow() -> list[dict]:
    params = load_params()
    ratio = float(json.loads(TUNE_RESULT.read_text())["best_ratio"])
    real, val = SliceSet.load(PREPARED / "mri_train"), SliceSet.load(PREPARED / "mri_val")
    synthetic = SliceSet.load(SYNTHETIC)
    arms = {"real_only": 0.0, "mix": ratio}
    models, history = [], []
    UNET_DIR.mkdir(parents=True, exist_ok=True)
    with stage_run(params, "train_unet", ("unet",), synthetic_md5=lock_hash("data/synthetic")) as parent:
        lineage = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
        for seed in params.evaluate.seeds:
            for arm, r in arms.items():
                with mlflow.start_run(run_name=f"unet-{arm}-seed{seed}", nested=True,
                                      parent_run_id=parent.info.run_id,
                                      tags={**lineage, "kind": "unet", "arm": arm}) as run:
                    mlflow.log_params({"arm": arm, "ratio": r, "seed": seed,
                                       **{f"unet.{k}": v for k, v in params.section("unet").items()}})
                    result = train_unet(real, synthetic, r, params.unet, seed=seed, val=val,
                                        on_eval=lambda step, row: mlflow.log_metrics(row, step=step))
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
    return models


if __name__ == "__main__":
    train_unet_flow()

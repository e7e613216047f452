"""Stage `train_unet`: U-Nets per seed for every arm of liversynth.training.arms: real MRI only,
real + EssNet-synthetic MRI at the tuned ratio, and the controls (CycleGAN synthetic, raw CT,
histogram-matched CT, synthetic only) at the same ratio.

All arms share seeds, steps and augmentation, so their test scores can be compared patient by
patient. Each model is its own MLflow run (tag kind=unet) with IoU/Dice curves on the validation split.

Each arm/seed checkpoints under .checkpoints/unet/ (outside DVC's outputs, which DVC deletes before
a rerun), so a killed stage continues on the next `dvc repro`: finished arms restore from their
final checkpoint, the interrupted one resumes, and their MLflow runs are reopened. The checkpoints
are deleted once the whole stage has succeeded.
"""
from __future__ import annotations

import json
import shutil

import mlflow
from prefect import flow

from flows.common import load_params, stage_run
from liversynth import paths
from liversynth.config import Params
from liversynth.data.slice_set import SliceSet, translation_mri
from liversynth.synthesis.controls import histogram_matched
from liversynth.tracking.lineage import lock_hash
from liversynth.tracking.runs import log_dataset, recorded_run
from liversynth.training.checkpoint import save_weights
from liversynth.training.arms import Arm, unet_arms
from liversynth.training.unet import train_unet
from liversynth.utils.files import wide_means, write_csv, write_json
from liversynth.utils.hashing import fingerprint

CHECKPOINTS = paths.CHECKPOINTS / "unet"


def _train_arm(params: Params, data: dict[str, SliceSet], spec: Arm, ratio: float, seed: int,
               parent_id: str, key: str, lineage: dict[str, str]) -> tuple[dict, list[dict]]:
    """One arm/seed as an MLflow run nested under the stage's, reopened if it was interrupted."""
    arm, source = spec.name, spec.source or "none"
    checkpoint = CHECKPOINTS / f"{arm}-seed{seed}.pt"
    real, extra = (data["real"], data.get(source)) if spec.real else (data[source], None)

    def start(run_id: str | None):
        return mlflow.start_run(run_id=run_id, run_name=None if run_id else f"unet[{arm} seed={seed}]",
                                nested=True, parent_run_id=parent_id, log_system_metrics=True,
                                tags={**lineage, "kind": "unet", "arm": arm})

    with recorded_run(checkpoint.with_suffix(".mlflow_run"), fingerprint(key, parent_id, arm, seed), start,
                      resume=checkpoint.exists()) as run:
        mlflow.log_params({"arm": arm, "ratio": ratio, "seed": seed, "synthetic_source": source,
                           **{f"unet.{k}": v for k, v in params.section("unet").items()}})
        _log_inputs(data, spec, source, ratio)
        result = train_unet(real, extra, ratio, params.unet, seed=seed, val=data["val"],
                            checkpoint=checkpoint, on_eval=lambda step, row: mlflow.log_metrics(row, step=step))
        if result.resumed_from:
            mlflow.set_tag("resumed_from_step", str(result.resumed_from))
        mlflow.log_metrics({"val_iou": result.best_val_iou})
        path = paths.UNET_DIR / f"{arm}-seed{seed}.pt"
        save_weights(result.model, path)
        model = {"arm": arm, "seed": seed, "ratio": ratio, "path": str(path), "run_id": run.info.run_id,
                 "val_iou": result.best_val_iou}
        return model, [{"arm": arm, "seed": seed, **row} for row in result.history]


def _log_inputs(data: dict[str, SliceSet], spec: Arm, source: str, ratio: float) -> None:
    """The arm's data as MLflow inputs, each with DVC's md5 of its folder as digest."""
    prepared = lock_hash(paths.PREPARED)
    folders = {v: (paths.synthetic_dir(v), lock_hash(paths.synthetic_dir(v))) for v in paths.VARIANTS}
    folders |= {"ct": (paths.PREPARED / "ct_train", prepared), "histmatch": (paths.PREPARED / "ct_train", prepared)}
    sets = [("mri_val", paths.PREPARED / "mri_val", prepared, "validation", data["val"])]
    if spec.real:
        sets.append(("mri_train", paths.PREPARED / "mri_train", prepared, "training", data["real"]))
    if spec.source and (ratio > 0 or not spec.real):
        folder, digest = folders[source]
        sets.append((f"source_{source}", folder, digest, "training", data[source]))
    for name, path, digest, context, slices in sets:
        log_dataset(name, str(path), digest, context, slices.images, slices.labels)


@flow(name="train_unet")
def train_unet_flow() -> list[dict]:
    params = load_params()
    ratio = float(json.loads(paths.TUNE_RESULT.read_text())["best_ratio"])
    ct = SliceSet.load(paths.PREPARED / "ct_train")
    data = {"real": SliceSet.load(paths.PREPARED / "mri_train"), "val": SliceSet.load(paths.PREPARED / "mri_val"),
            **{v: SliceSet.load(paths.synthetic_dir(v)) for v in paths.VARIANTS},
            "ct": ct, "histmatch": histogram_matched(ct, translation_mri(paths.PREPARED))}
    models, history = [], []
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    synthetic_md5 = lock_hash(paths.synthetic_dir("essnet"))
    key = fingerprint(params.section("unet"), params.evaluate.seeds, ratio, synthetic_md5, lock_hash(paths.PREPARED))
    start = lambda run_id: stage_run(params, "train_unet", ("unet",), run_id, synthetic_md5=synthetic_md5)  # noqa: E731
    with recorded_run(CHECKPOINTS / "train_unet.mlflow_run", key, start) as parent:
        lineage = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
        for seed in params.evaluate.seeds:
            for spec, r in unet_arms(ratio).values():
                model, rows = _train_arm(params, data, spec, r, seed, parent.info.run_id, key, lineage)
                models.append(model)
                history += rows
    write_json(paths.UNET_MODELS, models)
    write_csv(paths.UNET_HISTORY, history, ["arm", "seed", "step", "train_loss", "val_iou", "val_dice"])
    arms = list(unet_arms(ratio))
    write_csv(paths.UNET_VAL_IOU, wide_means(history, "step", "arm", "val_iou", arms), ["step", *arms])
    # Finished: a later run must start fresh, not "resume" into other data or params.
    shutil.rmtree(CHECKPOINTS, ignore_errors=True)
    return models


if __name__ == "__main__":
    train_unet_flow()

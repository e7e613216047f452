"""Stage `train_essnet@<variant>`: EssNet (CycleGAN + segmenter on synthetic MRI) on unpaired CT and MRI.

Variant `essnet` uses params.essnet as it is; variant `cyclegan` is the ablation, the same network and
schedule with the segmentation loss off (lambda_seg = 0), i.e. a plain CycleGAN.

Training checkpoints to .checkpoints/ (outside DVC's outputs, which DVC deletes before a rerun), so
a killed run picks up where it stopped on the next `dvc repro`, and its MLflow run is resumed too.
"""
from __future__ import annotations

import argparse

import mlflow
import numpy as np
from prefect import flow

from flows.common import load_params, stage_run
from liversynth import paths
from liversynth.data.slice_set import SliceSet, translation_mri
from liversynth.evaluation import plots
from liversynth.synthesis.translate import synthesize
from liversynth.tracking.lineage import lock_hash
from liversynth.tracking.runs import log_dataset, recorded_run
from liversynth.training.checkpoint import save_weights
from liversynth.training.essnet import TrainResult, train_essnet, variant_config
from liversynth.utils.files import write_csv
from liversynth.utils.hashing import fingerprint


@flow(name="train_essnet")
def train_essnet_flow(variant: str = "essnet") -> dict:
    params = load_params()
    cfg = variant_config(params.essnet, variant)
    checkpoint = paths.essnet_checkpoint(variant)
    ct, mri = SliceSet.load(paths.PREPARED / "ct_train"), translation_mri(paths.PREPARED)
    # Reopen the interrupted run only for this same work (same params and data), never another's.
    key = fingerprint(cfg.model_dump(), params.seed, variant, lock_hash(paths.PREPARED))
    record = checkpoint.with_suffix(".mlflow_run")
    start = lambda run_id: stage_run(params, "train_essnet", ("essnet",), run_id,  # noqa: E731
                                     system_metrics=True, variant=variant)
    with recorded_run(record, key, start, resume=checkpoint.exists()):
        mlflow.log_params({"seed": params.seed, "n_ct_slices": len(ct), "n_mri_slices": len(mri),
                           "variant": variant, "effective_lambda_seg": cfg.lambda_seg})
        digest = lock_hash(paths.PREPARED)  # DVC's md5 of data/prepared
        log_dataset("ct_train", str(paths.PREPARED / "ct_train"), digest, "training", ct.images, ct.labels)
        log_dataset("mri_train+unlabelled", str(paths.PREPARED), digest, "training", mri)
        result = train_essnet(ct, mri, cfg, seed=params.seed, checkpoint=checkpoint,
                              on_log=lambda step, row: mlflow.log_metrics(row, step=step))
        if result.resumed_from:
            mlflow.set_tag("resumed_from_step", str(result.resumed_from))
        save_weights(result.model.g_ct2mri, paths.generator_path(variant))
        save_weights(result.model, paths.full_model_path(variant))
        write_csv(paths.variant_history(variant), result.history)
        for figure in _figures(result, ct, mri, params.synthesize.batch_size, variant):
            mlflow.log_artifact(str(figure), "figures")
    # Finished cleanly: a later run must start fresh, not "resume" into different data.
    checkpoint.unlink(missing_ok=True)
    record.unlink(missing_ok=True)
    return {"steps": result.steps_done, "resumed_from": result.resumed_from}


def _figures(result: TrainResult, ct: SliceSet, mri: np.ndarray, batch_size: int, variant: str) -> list:
    preview = ct.select(np.arange(len(ct)) % max(1, len(ct) // 4) == 0)
    fake = synthesize(result.model.g_ct2mri, preview, batch_size)
    grid = plots.image_grid({"CT": (preview.images, preview.labels),
                             "synthetic MRI": (fake.images, fake.labels),
                             "real MRI": (mri[:: max(1, len(mri) // 4)], None)}, paths.variant_grid(variant))
    loss = plots.curves({k: ([r["step"] for r in result.history], [r[k] for r in result.history])
                         for k in ("g_adv", "cycle", "seg", "d")},
                        paths.variant_losses(variant), f"{variant} losses")
    return [grid, loss]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=paths.VARIANTS, default="essnet")
    train_essnet_flow(parser.parse_args().variant)

"""Stage `train_essnet@<variant>`: EssNet (CycleGAN + segmenter on synthetic MRI) on unpaired CT and MRI.

Variant `essnet` uses params.essnet as it is; variant `cyclegan` is the ablation, the same network and
schedule with the segmentation loss off (lambda_seg = 0), i.e. a plain CycleGAN.

Training checkpoints to .checkpoints/ (outside DVC's outputs, which DVC deletes before a rerun), so
a killed run picks up where it stopped on the next `dvc repro`, and its MLflow run is resumed too.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
from pathlib import Path

import mlflow
import numpy as np
from prefect import flow

from flows.common import fingerprint, load_params, lock_hash, save_run, saved_run, stage_run
from flows.prepare import PREPARED
from liversynth import plots
from liversynth.atomic import write_atomic_file
from liversynth.slices import SliceSet
from liversynth.synthesize import synthesize
from liversynth.train_essnet import save_essnet, save_generator, train_essnet

VARIANTS = ("essnet", "cyclegan")


def generator_path(variant: str = "essnet") -> Path:
    return Path("models") / variant / "g_ct2mri.pt"


def full_model_path(variant: str = "essnet") -> Path:
    return Path("models") / variant / "essnet.pt"


def variant_config(params, variant: str):
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    return params.essnet if variant == "essnet" else dataclasses.replace(params.essnet, lambda_seg=0.0)


GENERATOR = generator_path("essnet")


def mri_for_translation() -> np.ndarray:
    """Unlabelled and labelled-train MRI images: EssNet never needs MRI labels (val/test stay unseen)."""
    parts = [np.asarray(SliceSet.load(PREPARED / s).images) for s in ("mri_train", "mri_unlabelled")]
    return np.concatenate([p for p in parts if len(p)])


@flow(name="train_essnet")
def train_essnet_flow(variant: str = "essnet") -> dict:
    params = load_params()
    cfg = variant_config(params, variant)
    checkpoint = Path(".checkpoints") / f"{variant}.pt"
    run_id_file = checkpoint.with_suffix(".mlflow_run")
    ct = SliceSet.load(PREPARED / "ct_train")
    mri = mri_for_translation()
    # Reopen the interrupted run only for this same work (same params and data), never another's.
    key = fingerprint(dataclasses.asdict(cfg), params.seed, variant, lock_hash("data/prepared"))
    resume_id = saved_run(run_id_file, key) if checkpoint.exists() else None
    with stage_run(params, "train_essnet", ("essnet",), resume_run_id=resume_id, variant=variant) as run:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        save_run(run_id_file, key, run.info.run_id)
        mlflow.log_params({"seed": params.seed, "n_ct_slices": len(ct), "n_mri_slices": len(mri),
                           "variant": variant, "effective_lambda_seg": cfg.lambda_seg})
        result = train_essnet(ct, mri, cfg, seed=params.seed, checkpoint=checkpoint,
                              on_log=lambda step, row: mlflow.log_metrics(row, step=step))
        if result.resumed_from:
            mlflow.set_tag("resumed_from_step", str(result.resumed_from))
        generator_path(variant).parent.mkdir(parents=True, exist_ok=True)
        save_generator(result.model, generator_path(variant))
        save_essnet(result.model, full_model_path(variant))
        _write_history(result.history, Path("reports") / f"{variant}_history.csv")
        preview = ct.select(np.arange(len(ct)) % max(1, len(ct) // 4) == 0)
        fake = synthesize(result.model.g_ct2mri, preview, params.synthesize.batch_size)
        grid = plots.image_grid({"CT": (preview.images, preview.labels),
                                 "synthetic MRI": (fake.images, fake.labels),
                                 "real MRI": (mri[:: max(1, len(mri) // 4)], None)},
                                Path(f"reports/figures/{variant}_grid.png"))
        loss = plots.curves({k: ([r["step"] for r in result.history], [r[k] for r in result.history])
                             for k in ("g_adv", "cycle", "seg", "d")},
                            Path(f"reports/figures/{variant}_losses.png"), f"{variant} losses")
        mlflow.log_artifact(str(grid), "figures")
        mlflow.log_artifact(str(loss), "figures")
    # Finished cleanly: a later run must start fresh, not "resume" into different data.
    checkpoint.unlink(missing_ok=True)
    run_id_file.unlink(missing_ok=True)
    return {"steps": result.steps_done, "resumed_from": result.resumed_from}


def _write_history(history: list[dict], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]) if history else ["step"])
    writer.writeheader()
    writer.writerows(history)
    write_atomic_file(path, buf.getvalue())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=VARIANTS, default="essnet")
    train_essnet_flow(parser.parse_args().variant)

"""Stage `train_essnet`: EssNet (CycleGAN + segmenter on synthetic MRI) on unpaired CT and MRI.

Training checkpoints to .checkpoints/ (outside DVC's outputs, which DVC deletes before a rerun), so
a killed run picks up where it stopped on the next `dvc repro`, and its MLflow run is resumed too.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import mlflow
import numpy as np
from prefect import flow

from flows.common import load_params, stage_run
from flows.prepare import PREPARED
from liversynth import plots
from liversynth.atomic import write_atomic_file
from liversynth.slices import SliceSet
from liversynth.synthesize import synthesize
from liversynth.train_essnet import save_generator, train_essnet

ESSNET_DIR = Path("models/essnet")
GENERATOR = ESSNET_DIR / "g_ct2mri.pt"
HISTORY = Path("reports/essnet_history.csv")
CHECKPOINT = Path(".checkpoints/essnet.pt")
RUN_ID_FILE = CHECKPOINT.with_suffix(".mlflow_run")


def mri_for_translation() -> np.ndarray:
    """Unlabelled and labelled-train MRI images: EssNet never needs MRI labels (val/test stay unseen)."""
    parts = [np.asarray(SliceSet.load(PREPARED / s).images) for s in ("mri_train", "mri_unlabelled")]
    return np.concatenate([p for p in parts if len(p)])


@flow(name="train_essnet")
def train_essnet_flow() -> dict:
    params = load_params()
    ct = SliceSet.load(PREPARED / "ct_train")
    mri = mri_for_translation()
    resume_id = RUN_ID_FILE.read_text().strip() if CHECKPOINT.exists() and RUN_ID_FILE.exists() else None
    with stage_run(params, "train_essnet", ("essnet",), resume_run_id=resume_id) as run:
        CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_file(RUN_ID_FILE, run.info.run_id)
        mlflow.log_params({"seed": params.seed, "n_ct_slices": len(ct), "n_mri_slices": len(mri)})
        result = train_essnet(ct, mri, params.essnet, seed=params.seed, checkpoint=CHECKPOINT,
                              on_log=lambda step, row: mlflow.log_metrics(row, step=step))
        if result.resumed_from:
            mlflow.set_tag("resumed_from_step", str(result.resumed_from))
        ESSNET_DIR.mkdir(parents=True, exist_ok=True)
        save_generator(result.model, GENERATOR)
        _write_history(result.history)
        preview = ct.select(np.arange(len(ct)) % max(1, len(ct) // 4) == 0)
        fake = synthesize(result.model.g_ct2mri, preview, params.synthesize.batch_size)
        grid = plots.image_grid({"CT": (preview.images, preview.labels),
                                 "synthetic MRI": (fake.images, fake.labels),
                                 "real MRI": (mri[:: max(1, len(mri) // 4)], None)},
                                Path("reports/figures/essnet_grid.png"))
        loss = plots.curves({k: ([r["step"] for r in result.history], [r[k] for r in result.history])
                             for k in ("g_adv", "cycle", "seg", "d")},
                            Path("reports/figures/essnet_losses.png"), "EssNet losses")
        mlflow.log_artifact(str(grid), "figures")
        mlflow.log_artifact(str(loss), "figures")
    # Finished cleanly: a later run must start fresh, not "resume" into different data.
    CHECKPOINT.unlink(missing_ok=True)
    RUN_ID_FILE.unlink(missing_ok=True)
    return {"steps": result.steps_done, "resumed_from": result.resumed_from}


def _write_history(history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]) if history else ["step"])
    writer.writeheader()
    writer.writerows(history)
    write_atomic_file(HISTORY, buf.getvalue())


if __name__ == "__main__":
    train_essnet_flow()

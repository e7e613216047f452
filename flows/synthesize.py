"""Stage `synthesize`: every labelled CT slice -> a synthetic MRI slice carrying the CT liver label."""
from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from prefect import flow

from flows.common import load_params, stage_run
from flows.prepare import PREPARED
from flows.train_essnet import GENERATOR, mri_for_translation
from liversynth import plots
from liversynth.atomic import write_json
from liversynth.slices import SliceSet
from liversynth.synthesize import histogram_wasserstein, synthesize
from liversynth.train_essnet import load_generator

SYNTHETIC = Path("data/synthetic")
SYNTH_METRICS = Path("reports/synthesis_metrics.json")


@flow(name="synthesize")
def synthesize_flow() -> dict:
    params = load_params()
    ct = SliceSet.load(PREPARED / "ct_train")
    generator = load_generator(GENERATOR, params.essnet)
    synthetic = synthesize(generator, ct, params.synthesize.batch_size)
    synthetic.save(SYNTHETIC)
    real = mri_for_translation()
    metrics = {"n_synthetic": len(synthetic),
               "wasserstein_synthetic_vs_real_mri": histogram_wasserstein(np.asarray(synthetic.images), real),
               "wasserstein_ct_vs_real_mri": histogram_wasserstein(np.asarray(ct.images), real)}
    with stage_run(params, "synthesize", ("synthesize",)):
        mlflow.log_metrics(metrics)
        grid = plots.image_grid({"CT": (ct.images, ct.labels), "synthetic MRI": (synthetic.images, synthetic.labels),
                                 "real MRI": (real, None)}, Path("reports/figures/synthesis_grid.png"))
        mlflow.log_artifact(str(grid), "figures")
    write_json(SYNTH_METRICS, metrics)
    return metrics


if __name__ == "__main__":
    synthesize_flow()

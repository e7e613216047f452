"""Stage `synthesize@<variant>`: every labelled CT slice -> a synthetic MRI slice carrying its CT liver label.

Also measures translation quality without downloaded weights: the Wasserstein distance between
synthetic and real MRI intensity histograms, and cycle-reconstruction MAE/PSNR/SSIM.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
import numpy as np
from prefect import flow

from flows.common import load_params, stage_run
from flows.prepare import PREPARED
from flows.train_essnet import VARIANTS, full_model_path, generator_path, mri_for_translation, variant_config
from liversynth import plots
from liversynth.atomic import write_json
from liversynth.slices import SliceSet
from liversynth.synthesize import cycle_metrics, histogram_wasserstein, synthesize
from liversynth.train_essnet import load_essnet, load_generator


def synthetic_dir(variant: str = "essnet") -> Path:
    return Path("data/synthetic") / variant


def synthesis_metrics_path(variant: str = "essnet") -> Path:
    return Path("reports") / f"synthesis_metrics_{variant}.json"


SYNTHETIC = synthetic_dir("essnet")
SYNTH_METRICS = synthesis_metrics_path("essnet")


@flow(name="synthesize")
def synthesize_flow(variant: str = "essnet") -> dict:
    params = load_params()
    cfg = variant_config(params, variant)
    ct = SliceSet.load(PREPARED / "ct_train")
    synthetic = synthesize(load_generator(generator_path(variant), cfg), ct, params.synthesize.batch_size)
    synthetic.save(synthetic_dir(variant))
    real = mri_for_translation()
    labelled_real = SliceSet.load(PREPARED / "mri_train")
    metrics = {"n_synthetic": len(synthetic),
               "wasserstein_synthetic_vs_real_mri": histogram_wasserstein(np.asarray(synthetic.images), real),
               "wasserstein_ct_vs_real_mri": histogram_wasserstein(np.asarray(ct.images), real),
               **cycle_metrics(load_essnet(full_model_path(variant), cfg), ct, real, params.synthesize.batch_size)}
    with stage_run(params, "synthesize", ("synthesize",), variant=variant):
        mlflow.log_metrics(metrics)
        grid = plots.image_grid({"CT": (ct.images, ct.labels),
                                 f"synthetic MRI ({variant})": (synthetic.images, synthetic.labels),
                                 "real MRI": (labelled_real.images, labelled_real.labels)},
                                Path(f"reports/figures/synthesis_grid_{variant}.png"))
        mlflow.log_artifact(str(grid), "figures")
    write_json(synthesis_metrics_path(variant), metrics)
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=VARIANTS, default="essnet")
    synthesize_flow(parser.parse_args().variant)

"""Stage `synthesize@<variant>`: every labelled CT slice -> a synthetic MRI slice carrying its CT liver label,
once per generator seed (data/synthetic/<variant>/seed<N>/).

Also measures translation quality without downloaded weights: the Wasserstein distance between
synthetic and real MRI intensity histograms, and cycle-reconstruction MAE/PSNR/SSIM.
"""
from __future__ import annotations

import argparse

import mlflow
import numpy as np
from prefect import flow

from flows.common import link_run, start_stage
from liversynth import paths
from liversynth.data.slice_set import SliceSet, translation_mri
from liversynth.synthesis.quality import cycle_metrics, histogram_wasserstein
from liversynth.synthesis.translate import synthesize
from liversynth.models.essnet import load_essnet
from liversynth.models.generator import load_generator
from liversynth.tracking.runs import stage_run
from liversynth.training.essnet import variant_config
from liversynth.utils import figures
from liversynth.utils.files import write_json


@flow(name="synthesize")
def synthesize_flow(variant: str = "essnet") -> dict:
    params = start_stage()
    cfg = variant_config(params.essnet, variant)
    ct = SliceSet.load(paths.PREPARED / "ct_train")
    real = translation_mri(paths.PREPARED)
    per_seed, first = {}, None
    for seed in cfg.seeds:  # one synthetic set per generator seed
        synthetic = synthesize(load_generator(paths.generator_path(variant, seed), cfg), ct,
                               params.synthesize.batch_size)
        synthetic.save(paths.synthetic_dir(variant, seed))
        first = first or synthetic
        per_seed[str(seed)] = {
            "n_synthetic": len(synthetic),
            "wasserstein_synthetic_vs_real_mri": histogram_wasserstein(np.asarray(synthetic.images), real),
            **cycle_metrics(load_essnet(paths.full_model_path(variant, seed), cfg), ct, real,
                            params.synthesize.batch_size)}
    # The headline is the mean over generator seeds; each seed's figures are kept beside it.
    metrics = {k: float(np.mean([m[k] for m in per_seed.values()])) for k in next(iter(per_seed.values()))}
    metrics["wasserstein_ct_vs_real_mri"] = histogram_wasserstein(np.asarray(ct.images), real)
    labelled_real = SliceSet.load(paths.PREPARED / "mri_train")
    with stage_run(params, "synthesize", ("synthesize",), variant=variant, on_open=link_run):
        mlflow.log_metrics(metrics)
        assert first is not None
        grid = figures.image_grid({"CT": (ct.images, ct.labels),
                                 f"synthetic MRI ({variant}, seed {cfg.seeds[0]})": (first.images, first.labels),
                                 "real MRI": (labelled_real.images, labelled_real.labels)},
                                paths.synthesis_grid(variant))
        mlflow.log_artifact(str(grid), "figures")
    write_json(paths.synthesis_metrics_path(variant), {**metrics, "per_generator_seed": per_seed})
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=paths.VARIANTS, default="essnet")
    synthesize_flow(parser.parse_args().variant)

"""Stage `train_essnet`: one EssNet (CycleGAN + segmenter on synthetic MRI) per generator seed
(`essnet.seeds`) and variant, on unpaired CT and MRI, all of them trained at once in worker processes.

Variant `essnet` uses params.essnet as it is; variant `cyclegan` is the ablation, the same network and
schedule with the segmentation loss off (lambda_seg = 0), i.e. a plain CycleGAN. Several seeds per
variant put the generators' training randomness into evaluate's intervals. Both variants are one grid
of seeds x variants, so no core idles while the last seed of one variant trains alone.

Each seed checkpoints to .checkpoints/ (outside DVC's outputs, which DVC deletes before a rerun), so a
killed stage picks up where it stopped on the next `dvc repro` and its MLflow runs are reopened. Each
seed has its run (`train_essnet[essnet seed=0]`, nested under the stage's) from the moment its worker
starts it: RUNNING while it trains, its losses streamed with their step (liversynth.tracking.live).

On the phantom, every checkpoint also scores the generator against the oracle translation (data/oracle:
SSIM, PSNR, MAE, tissue contrast rank; liversynth.synthesis.fidelity): MLflow metrics `fidelity_*` with the
step on each seed's run, and reports/<variant>_fidelity.csv, from which evaluate judges convergence.
"""
from __future__ import annotations

import mlflow
import numpy as np
from prefect import flow

from flows.common import grid_map, link_run, load_params, start_stage, with_workers
from liversynth import paths
from liversynth.config import EssNetConfig, Params
from liversynth.data.slice_set import SliceSet, translation_mri
from liversynth.synthesis.translate import synthesize
from liversynth.tracking.lineage import lock_hash
from liversynth.models.generator import load_generator
from liversynth.synthesis.fidelity import FIDELITY_KEYS
from liversynth.tracking.live import child_run, tracked_cell
from liversynth.tracking.runs import log_dataset, recorded_run, stage_run
from liversynth.training.essnet import LOSS_KEYS, variant_config
from liversynth.training.generator_cells import generator_cell
from liversynth.training.grid import Cell, run_grid
from liversynth.utils import figures
from liversynth.utils.files import write_csv
from liversynth.utils.hashing import fingerprint


@flow(name="train_essnet")
def train_essnet_flow() -> dict:
    params = start_stage()
    configs = {v: variant_config(params.essnet, v) for v in paths.VARIANTS}
    ct, mri = SliceSet.load(paths.PREPARED / "ct_train"), translation_mri(paths.PREPARED)
    checkpoints = [paths.essnet_checkpoint(v, s) for v in paths.VARIANTS for s in params.essnet.seeds]
    # Reopen the interrupted run only for this same work (same params and data), never another's.
    key = fingerprint(params.essnet.model_dump(), params.seed, paths.VARIANTS, lock_hash(paths.PREPARED))
    record = paths.CHECKPOINTS / "train_essnet.mlflow_run"
    start = lambda run_id: stage_run(params, "train_essnet", ("essnet",), run_id,  # noqa: E731
                                     system_metrics=True, on_open=link_run)
    with recorded_run(record, key, start, resume=any(c.exists() for c in checkpoints)) as run:
        mlflow.log_params({"seed": params.seed, "n_ct_slices": len(ct), "n_mri_slices": len(mri),
                           "variants": ",".join(paths.VARIANTS)})
        digest = lock_hash(paths.PREPARED)  # DVC's md5 of data/prepared
        log_dataset("ct_train", str(paths.PREPARED / "ct_train"), digest, "training", ct.images, ct.labels)
        log_dataset("mri_train+unlabelled", str(paths.PREPARED), digest, "training", mri)
        cells = [_seed_cell(run, key, v, s, cfg) for v, cfg in configs.items() for s in cfg.seeds]
        by_cell = run_grid(cells, grid_map(params))
        for variant in paths.VARIANTS:
            history = [{"seed": r["seed"], **row} for r in by_cell.values() if r["variant"] == variant
                       for row in r["history"]]
            write_csv(paths.variant_history(variant), history, ["seed", "step", *LOSS_KEYS])
            fidelity = [{"seed": r["seed"], **row} for r in by_cell.values() if r["variant"] == variant
                        for row in r["fidelity"]]
            write_csv(paths.variant_fidelity(variant), fidelity, ["seed", "step", *FIDELITY_KEYS, "cpu_s"])
            for figure in _figures(history, ct, mri, params, variant):
                mlflow.log_artifact(str(figure), "figures")
    # Finished cleanly: a later run must start fresh, not "resume" into different data.
    for checkpoint in checkpoints:
        checkpoint.unlink(missing_ok=True)
        checkpoint.with_suffix(".mlflow_run").unlink(missing_ok=True)
    for v in paths.VARIANTS:
        for seed in params.essnet.seeds:
            for kept in paths.CHECKPOINTS.glob(paths.kept_generator_path(v, seed, 0).name.replace("step0", "step*")):
                kept.unlink(missing_ok=True)
    record.unlink(missing_ok=True)
    return {name: {"resumed_from": r["resumed_from"]} for name, r in by_cell.items()}


def _seed_cell(parent: mlflow.ActiveRun, key: str, variant: str, seed: int, cfg: EssNetConfig) -> Cell:
    """One seed's training as a grid cell that opens its own live run in the worker (tag kind=generator);
    the run id is recorded beside the seed's checkpoint, so a resumed seed continues its run."""
    checkpoint = paths.essnet_checkpoint(variant, seed)
    run = child_run(parent, f"train_essnet[{variant} seed={seed}]",
                    {"kind": "generator", "variant": variant, "generator_seed": str(seed)},
                    {"variant": variant, "generator_seed": seed, "steps": cfg.steps,
                     "effective_lambda_seg": cfg.lambda_seg},
                    record=checkpoint.with_suffix(".mlflow_run"), key=f"{key}:{variant}:{seed}")
    return Cell(f"{variant} seed={seed}", tracked_cell,
                {"run": run, "fn": generator_cell, "kwargs": {"variant": variant, "seed": seed, "cfg": cfg}})


def _figures(history: list[dict], ct: SliceSet, mri: np.ndarray, params: Params, variant: str) -> list:
    """The first seed's translations as an image grid; every seed's loss curves."""
    seed = params.essnet.seeds[0]
    generator = load_generator(paths.generator_path(variant, seed), variant_config(params.essnet, variant))
    preview = ct.select(np.arange(len(ct)) % max(1, len(ct) // 4) == 0)
    fake = synthesize(generator, preview, params.synthesize.batch_size)
    grid = figures.image_grid({"CT": (preview.images, preview.labels),
                             f"synthetic MRI (seed {seed})": (fake.images, fake.labels),
                             "real MRI": (mri[:: max(1, len(mri) // 4)], None)}, paths.variant_grid(variant))
    curves = {f"{k} seed {s}": ([r["step"] for r in history if r["seed"] == s],
                                [r[k] for r in history if r["seed"] == s])
              for s in params.essnet.seeds for k in ("g_adv", "cycle", "seg", "d")}
    loss = figures.curves(curves, paths.variant_losses(variant), f"{variant} losses")
    return [grid, loss]


if __name__ == "__main__":
    with_workers(train_essnet_flow, load_params())()

"""The generator trainings of train_essnet's grid as plain functions of names and numbers, so any task
runner can send them to a worker process: each loads the prepared data from disk, trains (resuming its
own checkpoint), writes its weights and returns what the stage logs. Nothing here tracks runs.

Apart from the U-Net cells (liversynth.training.unet_cells) so that train_essnet's code, and so its
DVC deps, hold no U-Net, evaluation or synthesis code: an edit there retrains no generator.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from liversynth import paths
from liversynth.config import EssNetConfig
from liversynth.data.oracle_set import load_oracle
from liversynth.data.slice_set import SliceSet, translation_mri
from liversynth.models.essnet import EssNet
from liversynth.models.weights import save_weights
from liversynth.synthesis.fidelity import generator_fidelity, probe_index
from liversynth.training.essnet import train_essnet, variant_config
from liversynth.utils.files import write_atomic_file

__all__ = ["BUDGET_FRACTIONS", "budget_steps", "generator_cell"]

BUDGET_FRACTIONS = (0.25, 0.5, 1.0)  # the study's translator-budget axis: these shares of essnet.steps


def budget_steps(cfg: EssNetConfig) -> tuple[int, ...]:
    """The checkpoint steps of the budget axis: each fraction of cfg.steps, rounded up to a checkpoint."""
    every = cfg.checkpoint_every
    return tuple(sorted({min(cfg.steps, -(-int(round(f * cfg.steps)) // every) * every) for f in BUDGET_FRACTIONS}))


def generator_cell(variant: str, seed: int, cfg: EssNetConfig,
                   on_metrics: Callable[[int, Mapping[str, float]], None] | None = None) -> dict[str, Any]:
    """Train one generator (variant, seed); weights to models/<variant>/seed<seed>/, also as they were at
    the budget steps short of the last (`budget_steps`). Where there is an oracle (phantom), every
    checkpoint scores the generator's fidelity against it, with the CPU seconds this process had spent
    ("fidelity" in the result; a resumed run counts only its own process's time).
    `on_metrics(step, row)` gets the losses at every log step and `fidelity_*` at every checkpoint, as
    they come (a tracker streams them to the seed's run)."""
    ct, mri = SliceSet.load(paths.PREPARED / "ct_train"), translation_mri(paths.PREPARED)
    oracle = load_oracle(paths.ORACLE) if paths.ORACLE.exists() else None
    probe, budget, cpu0 = probe_index(len(ct)), budget_steps(cfg), time.process_time()

    def at_checkpoint(step: int, model: EssNet) -> dict[str, float]:
        cpu_s = time.process_time() - cpu0
        if step in budget[:-1]:  # the full budget is the generator itself
            save_weights(model.g_ct2mri, paths.kept_generator_path(variant, seed, step))
        if oracle is None:
            return {}
        scores = generator_fidelity(model.g_ct2mri, ct.select(probe), oracle.select(probe))
        if on_metrics is not None:
            on_metrics(step, {f"fidelity_{k}": v for k, v in scores.items()})
        return {**scores, "cpu_s": cpu_s}

    result = train_essnet(ct, mri, variant_config(cfg, variant), seed=seed, name=f"{variant} seed={seed}",
                          checkpoint=paths.essnet_checkpoint(variant, seed), on_checkpoint=at_checkpoint,
                          on_log=on_metrics)
    for step in budget[:-1]:  # kept beside the training checkpoint, so a resumed run still has every one
        write_atomic_file(paths.generator_step_path(variant, seed, step),
                          paths.kept_generator_path(variant, seed, step).read_bytes())
    save_weights(result.model.g_ct2mri, paths.generator_path(variant, seed))
    save_weights(result.model, paths.full_model_path(variant, seed))
    return {"variant": variant, "seed": seed, "steps": result.steps_done, "resumed_from": result.resumed_from,
            "history": result.history, "fidelity": [p for p in result.checkpoints if len(p) > 1]}

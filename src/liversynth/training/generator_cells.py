"""The generator trainings of train_essnet's grid as plain functions of names and numbers, so any task
runner can send them to a worker process: each loads the prepared data from disk, trains (resuming its
own checkpoint), writes its weights and returns what the stage logs. Nothing here tracks runs.

Apart from the U-Net cells (liversynth.training.unet_cells) so that train_essnet's code, and so its
DVC deps, hold no U-Net, evaluation or synthesis code: an edit there retrains no generator.
"""
from __future__ import annotations

from typing import Any

from liversynth import paths
from liversynth.config import EssNetConfig
from liversynth.data.slice_set import SliceSet, translation_mri
from liversynth.models.weights import save_weights
from liversynth.training.essnet import train_essnet, variant_config

__all__ = ["generator_cell"]


def generator_cell(variant: str, seed: int, cfg: EssNetConfig) -> dict[str, Any]:
    """Train one generator (variant, seed); weights to models/<variant>/seed<seed>/."""
    ct, mri = SliceSet.load(paths.PREPARED / "ct_train"), translation_mri(paths.PREPARED)
    result = train_essnet(ct, mri, variant_config(cfg, variant), seed=seed,
                          checkpoint=paths.essnet_checkpoint(variant, seed), name=f"{variant} seed={seed}")
    save_weights(result.model.g_ct2mri, paths.generator_path(variant, seed))
    save_weights(result.model, paths.full_model_path(variant, seed))
    return {"variant": variant, "seed": seed, "steps": result.steps_done, "resumed_from": result.resumed_from,
            "history": result.history}

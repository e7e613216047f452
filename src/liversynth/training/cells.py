"""The trainings of the grid as plain functions of names and numbers, so any task runner can send them
to a worker process: each loads its inputs from the prepared data on disk, trains (resuming its own
checkpoint), writes its weights and returns what the stage logs. Nothing here tracks or prints runs:
tracking stays in the flow, outside the loops.

A cell's result depends only on its arguments and the worker's thread count (params.yaml `runtime:`),
never on which worker ran it or what ran there before (tests/test_grid.py).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liversynth import paths
from liversynth.config import EssNetConfig, UNetConfig
from liversynth.data.oracle_set import load_oracle
from liversynth.data.slice_set import SliceSet, first_patients, translation_mri
from liversynth.models.essnet import EssNet
from liversynth.synthesis.fidelity import generator_fidelity, probe_index
from liversynth.training.arms import arm, unet_arms
from liversynth.training.checkpoint import save_weights
from liversynth.training.essnet import train_essnet, variant_config

__all__ = ["BUDGET_FRACTIONS", "UNetCell", "benchmark_cells", "budget_steps", "generator_cell", "unet_cell", "unet_data"]


BUDGET_FRACTIONS = (0.25, 0.5, 1.0)  # the study's translator-budget axis: these shares of essnet.steps


def budget_steps(cfg: EssNetConfig) -> tuple[int, ...]:
    """The checkpoint steps of the budget axis: each fraction of cfg.steps, rounded up to a checkpoint."""
    every = cfg.checkpoint_every
    return tuple(sorted({min(cfg.steps, -(-int(round(f * cfg.steps)) // every) * every) for f in BUDGET_FRACTIONS}))


def generator_cell(variant: str, seed: int, cfg: EssNetConfig) -> dict[str, Any]:
    """Train one generator (variant, seed); weights to models/<variant>/seed<seed>/, also as they were at
    the budget steps short of the last (`budget_steps`). Where there is an oracle (phantom), every checkpoint scores the
    generator's fidelity against it, with the CPU seconds this process had spent ("fidelity" in the
    result; a resumed run counts only its own process's time)."""
    ct, mri = SliceSet.load(paths.PREPARED / "ct_train"), translation_mri(paths.PREPARED)
    oracle = load_oracle(paths.ORACLE) if paths.ORACLE.exists() else None
    probe, budget, cpu0 = probe_index(len(ct)), budget_steps(cfg), time.process_time()

    def at_checkpoint(step: int, model: EssNet) -> dict[str, float]:
        cpu_s = time.process_time() - cpu0
        if step in budget[:-1]:  # the full budget is the generator itself
            save_weights(model.g_ct2mri, paths.kept_generator_path(variant, seed, step))
        if oracle is None:
            return {}
        return {**generator_fidelity(model.g_ct2mri, ct.select(probe), oracle.select(probe)), "cpu_s": cpu_s}

    result = train_essnet(ct, mri, variant_config(cfg, variant), seed=seed,
                          checkpoint=paths.essnet_checkpoint(variant, seed), on_checkpoint=at_checkpoint)
    for step in budget[:-1]:  # kept beside the training checkpoint, so a resumed run still has every one
        shutil.copyfile(paths.kept_generator_path(variant, seed, step), paths.generator_step_path(variant, seed, step))
    save_weights(result.model.g_ct2mri, paths.generator_path(variant, seed))
    save_weights(result.model, paths.full_model_path(variant, seed))
    return {"variant": variant, "seed": seed, "steps": result.steps_done, "resumed_from": result.resumed_from,
            "history": result.history, "fidelity": [p for p in result.checkpoints if len(p) > 1]}


@dataclass(frozen=True)
class UNetCell:
    """One U-Net of the benchmark: an arm, its U-Net seed, the generator seed of its synthetic source
    (None for arms without one), the mixing ratio, the config (tuned lr/steps) and labelled patients."""

    arm: str
    seed: int
    generator_seed: int | None
    ratio: float
    cfg: UNetConfig
    labelled: int | None = None
    generator_step: int | None = None  # the study's budget axis: the generator as it was at this step

    @property
    def key(self) -> str:
        gen = "" if self.generator_seed is None else f" gen={self.generator_seed}"
        n = "" if self.labelled is None else f" n={self.labelled}"
        at = "" if self.generator_step is None else f" step={self.generator_step}"
        return f"{self.arm} seed={self.seed}{gen}{n}{at}"

    @property
    def file_stem(self) -> str:
        return self.key.replace(" ", "-").replace("=", "")


def unet_data(cell: UNetCell) -> tuple[SliceSet, SliceSet | None, SliceSet]:
    """(training slices, extra slices mixed in or None, validation slices) of a cell."""
    spec = arm(cell.arm)
    real = first_patients(SliceSet.load(paths.PREPARED / "mri_train"), cell.labelled)
    val = SliceSet.load(paths.PREPARED / "mri_val")
    source: SliceSet | None = None
    if spec.source in paths.VARIANTS:
        assert cell.generator_seed is not None, f"{cell.key}: a synthetic arm needs its generator seed"
        source = SliceSet.load(paths.synthetic_dir(spec.source, cell.generator_seed) if cell.generator_step is None
                               else paths.budget_synthetic_dir(spec.source, cell.generator_seed, cell.generator_step))
    elif spec.source == "ct":
        source = SliceSet.load(paths.PREPARED / "ct_train")
    elif spec.source == "oracle":
        source = SliceSet.load(paths.ORACLE)  # aligned with ct_train, CT labels kept
    elif spec.source == "histmatch":
        from liversynth.synthesis.controls import histogram_matched  # here: MONAI is slow to import

        source = histogram_matched(SliceSet.load(paths.PREPARED / "ct_train"), translation_mri(paths.PREPARED))
    if not spec.real:
        assert source is not None
        return source, None, val
    return real, source, val


def unet_cell(cell: UNetCell, out_dir: Path, checkpoint_dir: Path) -> dict[str, Any]:
    """Train one U-Net; weights to out_dir/<arm-seed...>.pt; returns its model record and history."""
    from liversynth.training.unet import train_unet  # here, not at import: generator workers skip MONAI

    real, extra, val = unet_data(cell)
    result = train_unet(real, extra, cell.ratio, cell.cfg, seed=cell.seed, val=val, progress=False,
                        checkpoint=Path(checkpoint_dir) / f"{cell.file_stem}.pt")
    path = Path(out_dir) / f"{cell.file_stem}.pt"
    save_weights(result.model, path)
    record = {"arm": cell.arm, "seed": cell.seed, "generator_seed": cell.generator_seed, "ratio": cell.ratio,
              "labelled": cell.labelled, "generator_step": cell.generator_step, "lr": cell.cfg.lr, "steps": cell.cfg.steps, "path": str(path),
              "val_iou": result.best_val_iou, "resumed_from": result.resumed_from, "key": cell.key}
    return {"model": record, "history": result.history}


def benchmark_cells(cfg: UNetConfig, tune: dict[str, Any], unet_seeds: tuple[int, ...],
                    generator_seeds: tuple[int, ...], labelled: int | None, oracle: bool = False) -> list[UNetCell]:
    """Every arm x U-Net seed. The real-only baseline trains with its own tuned lr/steps, every other
    arm with the mix's (ratio, lr, steps) tuned for EssNet. U-Net seed i of an arm with a synthetic
    source trains on generator seed i (or the only one): each replicate redraws both randomnesses.
    `oracle`: add the oracle arms (phantom only), trained with the mix's settings like every control."""
    mix = cfg.model_copy(update={"lr": float(tune.get("mix", {}).get("lr", cfg.lr)),
                                 "steps": int(tune.get("mix", {}).get("steps", cfg.steps))})
    base = cfg.model_copy(update={"lr": float(tune.get("baseline", {}).get("lr", cfg.lr)),
                                  "steps": int(tune.get("baseline", {}).get("steps", cfg.steps))})
    ratio = float(tune["best_ratio"])
    cells = []
    for i, seed in enumerate(unet_seeds):
        for spec, r in unet_arms(ratio, oracle).values():
            gen = generator_seeds[i % len(generator_seeds)] if spec.source in paths.VARIANTS else None
            cells.append(UNetCell(spec.name, seed, gen, r, base if spec.name == "real_only" else mix, labelled))
    return cells

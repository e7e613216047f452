"""Stage `study` (study/dvc.yaml, `make study`): the full design at several numbers of labelled real MRI
patients (`study.labelled_patients`). For each count, every arm is retrained over every U-Net seed, the
synthetic arms on every generator seed of the default run's generators, with the settings tuning
chose at `unet.labelled_patients`; each comparison gets the same hierarchical interval as evaluate's.
Writes reports/study/: metrics.json, the gain-versus-labelled-patients table (CSV) and its plot.

The translator-budget axis (phantom, at `unet.labelled_patients`): the EssNet mix retrained on each
generator seed's translation at 1/4 and 1/2 of its steps (`budget_steps`: the generators kept at those
checkpoints; the full budget is the ordinary mix), beside each point the generator's CPU-minutes and its
fidelity against the oracle, the EssNet gain and its share of the ceiling (reports/study/budget.*).

Resumable like train_unet: every cell checkpoints under .checkpoints/study/ until the stage ends.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from typing import Any

import mlflow
import numpy as np
from prefect import flow

from flows.common import grid_map, link_run, load_params, start_stage, with_workers
from liversynth import paths
from liversynth.config import Params
from liversynth.data.oracle_set import oracle_absent_reason
from liversynth.data.slice_set import SliceSet, split_sha256
from liversynth.evaluation import plots
from liversynth.evaluation.comparison import check_test_split, compare_arms
from liversynth.evaluation.scoring import score_models
from liversynth.runtime.machine import machine_record
from liversynth.tracking.lineage import lock_hash
from liversynth.evaluation.ceiling import read_fidelity
from liversynth.models.generator import load_generator
from liversynth.synthesis.translate import synthesize
from liversynth.tracking.runs import recorded_run, stage_run
from liversynth.tracking.unet_runs import log_unet_inputs, tracked_unet_cells
from liversynth.training.essnet import variant_config
from liversynth.training.generator_cells import budget_steps
from liversynth.training.grid import run_grid
from liversynth.training.unet_cells import UNetCell, arm_cells
from liversynth.utils.files import write_csv, write_json
from liversynth.utils.hashing import fingerprint

CHECKPOINTS = paths.CHECKPOINTS / "study"
# The gains plotted against the number of labelled patients (all are in metrics.json).
PLOTTED = {"gain_iou": "EssNet mix", "gain_iou_cyclegan": "CycleGAN mix", "gain_iou_ct": "raw CT mix",
           "gain_iou_histmatch": "histogram-matched CT mix", "gain_iou_oracle": "oracle mix (the ceiling)"}


def _summarise(params: Params, models: list[dict], registered: bool) -> dict[str, Any]:
    test, ct = SliceSet.load(paths.PREPARED / "mri_test"), SliceSet.load(paths.PREPARED / "ct_train")
    by_count: dict[str, Any] = {}
    for n in params.study.labelled_patients:
        chosen = [m for m in models if m["labelled_patients"] == n and m.get("generator_step") is None]
        by_arm, _, _ = score_models(chosen, test, params.unet, ct)
        result = compare_arms(by_arm, params.evaluate, params.seed, registered)
        by_count[str(n)] = {"test": result["test"], **{k: v for k, v in result.items()
                                                       if k.startswith("gain_") or k in ("ceiling", "share_of_ceiling")}}
    return by_count


def _budget_cells(params: Params, tune: dict, oracle: bool) -> list[UNetCell]:
    """The EssNet mix at each budget step short of the full one, on the generator as it was then (phantom
    only, and only where the study trains the baseline and the ceiling at the tuned labelled count)."""
    n = params.unet.labelled_patients
    if not oracle or n not in params.study.labelled_patients:
        return []
    mix = [c for c in arm_cells(params.unet, tune, params.evaluate.seeds, params.essnet.seeds, n)
           if c.arm == "mix"]
    return [dataclasses.replace(c, generator_step=step) for step in budget_steps(params.essnet)[:-1] for c in mix]


def _write_budget_data(params: Params, cells: list[UNetCell]) -> None:
    ct, cfg = SliceSet.load(paths.PREPARED / "ct_train"), variant_config(params.essnet, "essnet")
    for seed, step in sorted({(c.generator_seed, c.generator_step) for c in cells}):
        assert seed is not None and step is not None
        generator = load_generator(paths.generator_step_path("essnet", seed, step), cfg)
        synthesize(generator, ct, params.synthesize.batch_size).save(paths.budget_synthetic_dir("essnet", seed, step))


def _budget(params: Params, models: list[dict], registered: bool) -> list[dict[str, Any]]:
    """Per budget step: CPU-minutes and fidelity (means over generator seeds), EssNet gain and share."""
    n, test = params.unet.labelled_patients, SliceSet.load(paths.PREPARED / "mri_test")
    ct = SliceSet.load(paths.PREPARED / "ct_train")
    fidelity = read_fidelity(paths.variant_fidelity("essnet"))
    rows = []
    for step in budget_steps(params.essnet):
        at = None if step == params.essnet.steps else step
        chosen = [m for m in models if m["labelled_patients"] == n and (m["arm"] in ("real_only", "mix_oracle") or
                                                               m["arm"] == "mix" and m.get("generator_step") == at)]
        by_arm, _, _ = score_models(chosen, test, params.unet, ct)
        result = compare_arms(by_arm, params.evaluate, params.seed, registered)
        points = [r for r in fidelity if int(r["step"]) == step]
        rows.append({"step": step, "fraction": step / params.essnet.steps,
                     "cpu_min": float(np.mean([r.get("cpu_s", np.nan) for r in points])) / 60 if points else float("nan"),
                     **{f"fidelity_{k}": float(np.mean([r[k] for r in points])) if points else float("nan")
                        for k in ("ssim", "psnr", "mae", "contrast_rank")},
                     "gain_iou": result["gain_iou"], "ceiling": result.get("ceiling"),
                     "share": result.get("share_of_ceiling", {}).get("essnet")})
    return rows


@flow(name="study")
def study_flow() -> dict:
    params = start_stage()
    tune = json.loads(paths.TUNE_RESULT.read_text())
    test_hash = split_sha256(paths.PREPARED / "mri_test")
    registered = check_test_split(params.evaluate, test_hash)
    oracle = oracle_absent_reason(params.data.dataset) is None  # the ceiling at every count, phantom only
    cells = [c for n in params.study.labelled_patients
             for c in arm_cells(params.unet, tune, params.evaluate.seeds, params.essnet.seeds, n, oracle)]
    budget_cells = _budget_cells(params, tune, oracle)
    _write_budget_data(params, budget_cells)
    cells += budget_cells
    key = fingerprint(params.section("unet"), params.section("study"), params.evaluate.seeds, params.essnet.seeds,
                      tune, lock_hash(paths.synthetic_root("essnet")), lock_hash(paths.PREPARED),
                      lock_hash(paths.ORACLE) if oracle else None)
    start = lambda run_id: stage_run(params, "study", ("study", "unet"), run_id, on_open=link_run)  # noqa: E731
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    with recorded_run(CHECKPOINTS / "study.mlflow_run", key, start) as parent:
        grid = tracked_unet_cells(parent, "study", cells, paths.STUDY_MODELS, CHECKPOINTS, key)
        results = list(run_grid(grid, grid_map(params)).values())
        models = log_unet_inputs(cells, results)
        by_count = _summarise(params, models, registered)
        plotted = [k for k in PLOTTED if all(k in c for c in by_count.values())]  # the ceiling: phantom only
        rows = [{"labelled_patients": int(n), **{k: 100 * c[k]["mean"] for k in plotted},
                 **{f"{k}_ci_low": 100 * c[k]["ci_low"] for k in plotted},
                 **{f"{k}_ci_high": 100 * c[k]["ci_high"] for k in plotted},
                 **{f"{arm}_iou": v["iou"] for arm, v in c["test"].items()}} for n, c in by_count.items()]
        for row in rows:
            mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "labelled_patients"},
                               step=int(row["labelled_patients"]))
        figure = plots.gain_vs_labelled({label: [{"labelled_patients": int(n), **c[k]} for n, c in by_count.items()]
                                         for k, label in PLOTTED.items() if k in plotted}, paths.STUDY_GAIN_FIGURE)
        mlflow.log_artifact(str(figure), "figures")
        budget = _budget(params, models, registered) if budget_cells else []
        if budget:
            mlflow.log_artifact(str(plots.budget_axis(budget, paths.STUDY_BUDGET_FIGURE)), "figures")
    metrics = {"labelled_patients": list(params.study.labelled_patients), "by_labelled_patients": by_count,
               "seeds": list(params.evaluate.seeds), "generator_seeds": list(params.essnet.seeds),
               "tuned_at_labelled_patients": params.unet.labelled_patients, "test_split_sha256": test_hash,
               "registered": registered, "n_models": len(models), "budget": budget, "machine": machine_record()}
    write_json(paths.STUDY_MODELS / "models.json", models)
    write_json(paths.STUDY_METRICS, metrics)
    write_csv(paths.STUDY_GAIN_CSV, rows)
    write_csv(paths.STUDY_BUDGET_CSV, [{**{k: v for k, v in b.items() if not isinstance(v, dict) and v is not None},
                                        "gain_iou": 100 * b["gain_iou"]["mean"],
                                        "share": b["share"]["mean"] if b["share"] else float("nan")} for b in budget],
              ["step", "fraction", "cpu_min", "fidelity_ssim", "fidelity_psnr", "fidelity_mae",
               "fidelity_contrast_rank", "gain_iou", "share"])
    shutil.rmtree(CHECKPOINTS, ignore_errors=True)
    return metrics


if __name__ == "__main__":
    with_workers(study_flow, load_params())()

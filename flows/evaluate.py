"""Stage `evaluate`: test-split IoU/Dice of every arm over all seeds (and of the image-free atlas), the
pre-registered primary comparison and the secondary ones with intervals, anatomy drift, the report."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient
from prefect import flow

from flows.common import link_run, start_stage
from liversynth import paths
from liversynth.config import Params
from liversynth.data.slice_set import SliceSet, split_sha256
from liversynth.data.oracle_set import oracle_absent_reason
from liversynth.evaluation import plots, report
from liversynth.evaluation.ceiling import convergence, fidelity_curves, read_fidelity
from liversynth.evaluation.comparison import SUMMARY_KEYS, check_test_split, compare_arms
from liversynth.evaluation.drift import anatomy_drift
from liversynth.evaluation.intervals import hierarchical_gain
from liversynth.evaluation.scoring import score_models
from liversynth.runtime.machine import machine_record
from liversynth.synthesis.quality import segmentation_consistency
from liversynth.tracking.runs import log_pipeline_metrics, stage_run
from liversynth.models.unet import load_unet
from liversynth.utils.figures import curves, pyplot, save_figure
from liversynth.utils.files import wide_means, write_atomic_file, write_csv, write_json


def score_and_log(models: list[dict], test: SliceSet, params: Params) -> tuple[dict, list[dict]]:
    """Every trained U-Net and the CT-label atlas scored on test; each U-Net's scores on its own run."""
    by_arm, rows, per_model = score_models(models, test, params.unet, SliceSet.load(paths.PREPARED / "ct_train"))
    client = MlflowClient()
    for m, scores in zip(models, per_model):
        client.log_batch(m["run_id"], metrics=[mlflow.entities.Metric(f"test_{k}", scores[k], 0, 0)
                                               for k in SUMMARY_KEYS])
    return by_arm, rows


def synthesis_summary(models: list[dict], params: Params) -> dict[str, Any]:
    """Per variant: translation quality, segmentation consistency and anatomy drift (over generator
    seeds); EssNet - CycleGAN drift Dice over generator seeds, real-only segmenters and CT patients."""
    segmenters = [load_unet(Path(m["path"]), params.unet) for m in models if m["arm"] == "real_only"]
    out: dict[str, Any] = {}
    drift_dice: dict[str, list[np.ndarray]] = {}
    for variant in paths.VARIANTS:
        dice, shift, consistency = [], [], []
        for seed in params.essnet.seeds:
            synthetic = SliceSet.load(paths.synthetic_dir(variant, seed))
            drift = anatomy_drift(segmenters, synthetic)
            dice.append(np.asarray(drift["dice"]))
            shift.append(np.asarray(drift["centroid_shift_px"]))
            consistency.append(segmentation_consistency(segmenters[0], synthetic))
        drift_dice[variant] = dice
        out[variant] = {**json.loads(paths.synthesis_metrics_path(variant).read_text()),
                        "seg_consistency_dice": float(np.mean(consistency)),
                        "drift_dice": float(np.mean(dice)), "drift_centroid_shift_px": float(np.nanmean(shift)),
                        "n_generator_seeds": len(params.essnet.seeds)}
    diff = np.stack([e - c for e, c in zip(drift_dice["essnet"], drift_dice["cyclegan"])])
    out["drift_dice_essnet_minus_cyclegan"] = hierarchical_gain(diff, params.evaluate.n_bootstrap,
                                                                params.evaluate.ci, seed=params.seed)
    return out


@flow(name="evaluate")
def evaluate_flow() -> dict:
    params = start_stage()
    models = json.loads(paths.UNET_MODELS.read_text())
    tune = json.loads(paths.TUNE_RESULT.read_text())
    test_dir = paths.PREPARED / "mri_test"
    test_hash = split_sha256(test_dir)
    registered = check_test_split(params.evaluate, test_hash)  # before any test result is computed
    test = SliceSet.load(test_dir)
    with stage_run(params, "evaluate", ("evaluate",), on_open=link_run):
        by_arm, rows = score_and_log(models, test, params)
        result = compare_arms(by_arm, params.evaluate, params.seed, registered)
        synthesis = synthesis_summary(models, params)
        metrics = {"test": result["test"], "best_ratio": tune["best_ratio"], "tuned": _tuned(tune),
                   "primary": result["primary"],
                   **{k: v for k, v in result.items() if k.startswith("gain_")},
                   "n_test_patients": len(result["patients"]), "seeds": list(params.evaluate.seeds),
                   "generator_seeds": list(params.essnet.seeds), "labelled_patients": _labelled(params),
                   "ci": params.evaluate.ci, "test_split_sha256": test_hash,
                   "synthesis": synthesis["essnet"], "synthesis_cyclegan": synthesis["cyclegan"],
                   "drift_dice_essnet_minus_cyclegan": synthesis["drift_dice_essnet_minus_cyclegan"],
                   **_ceiling(params, result), "machine": machine_record()}
        headline = _log(metrics, result)
        log_pipeline_metrics(params, {**headline, "best_ratio": float(tune["best_ratio"])})
        figures = _figures(result, tune)
        if metrics["fidelity"]:
            figures["translation fidelity (SSIM against the oracle) versus generator step"] = curves(
                fidelity_curves({v: read_fidelity(paths.variant_fidelity(v)) for v in paths.VARIANTS}),
                paths.EVALUATE_FIGURES["fidelity"], "fidelity against the oracle", xlabel="generator step",
                ylabel="SSIM (body pixels)")
        else:  # the declared out exists on every dataset; it says why there is no curve
            _no_fidelity_figure(metrics["oracle"]["reason"] or "no generator checkpoint was scored",
                                paths.EVALUATE_FIGURES["fidelity"])
        for fig in figures.values():
            mlflow.log_artifact(str(fig), "figures")
        tables = {"EssNet": metrics["synthesis"], "CycleGAN (ablation)": metrics["synthesis_cyclegan"]}
        page = report.render_html(metrics, tables, figures,
                                  [[r["patient"], r["arm"], str(r["seed"]), f"{r['iou']:.4f}", f"{r['dice']:.4f}"]
                                   for r in rows])
        write_atomic_file(paths.REPORT, page)
        mlflow.log_artifact(str(paths.REPORT))
        _prefect_artifacts(report.render_markdown(metrics, tables), result["test"])
    write_json(paths.METRICS, metrics)
    write_csv(paths.PER_PATIENT, rows, ["arm", "seed", "generator_seed", "patient", "iou", "dice"])
    arms = list(result["test"])
    wide = [{"patient_index": i, **r} for i, r in enumerate(wide_means(rows, "patient", "arm", "iou", arms))]
    write_csv(paths.PER_PATIENT_IOU, wide, ["patient_index", "patient", *arms])
    return metrics


def _no_fidelity_figure(reason: str, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"No translation fidelity against an oracle: {reason}", ha="center", va="center", wrap=True)
    return save_figure(fig, path)


def _ceiling(params: Params, result: dict) -> dict[str, Any]:
    """Phantom only: the ceiling, each translator's share of it, fidelity and convergence per variant;
    elsewhere why there is none."""
    reason = oracle_absent_reason(params.data.dataset)
    out: dict[str, Any] = {"oracle": {"available": reason is None, "reason": reason}, "fidelity": {}}
    for key in ("ceiling", "share_of_ceiling"):
        if key in result:
            out[key] = result[key]
    for variant in paths.VARIANTS:
        rows = read_fidelity(paths.variant_fidelity(variant))
        if rows:
            out["fidelity"][variant] = convergence(rows, params.essnet.steps, params.evaluate.converged_ssim_slope)
    references = paths.ORACLE / "fidelity_references.json"
    if reason is None and references.exists():
        out["fidelity_references"] = json.loads(references.read_text())
    return out


def _tuned(tune: dict) -> dict[str, Any]:
    """What tuning chose on validation, for the mix and for the real-only baseline."""
    return {"mix": tune.get("mix", {"ratio": tune["best_ratio"]}), "baseline": tune.get("baseline", {}),
            "n_trials_mix": sum(1 for t in tune["trials"] if float(t["ratio"]) > 0),
            "n_trials_baseline": sum(1 for t in tune["trials"] if float(t["ratio"]) == 0)}


def _labelled(params: Params) -> int:
    n = len(SliceSet.load(paths.PREPARED / "mri_train").patient_ids())
    return min(n, params.unet.labelled_patients or n)


def _log(metrics: dict, result: dict) -> dict[str, float]:
    """Every arm's test scores and every gain on the stage's run; returns them (the headline)."""
    headline = {f"{arm}_test_{k}": float(v) for arm, values in result["test"].items() for k, v in values.items()}
    headline.update({f"{key}_{k}": float(v) for key in result if key.startswith("gain_")
                     for k, v in result[key].items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    for key in ("ceiling", *(f"share_of_ceiling.{t}" for t in metrics.get("share_of_ceiling", {}))):
        value = metrics.get("ceiling") if key == "ceiling" else metrics["share_of_ceiling"][key.split(".")[1]]
        if value:
            headline.update({f"{key.replace('.', '_')}_{k}": float(value[k]) for k in ("mean", "ci_low", "ci_high")})
    for variant, f in metrics.get("fidelity", {}).items():
        headline.update({f"fidelity_{variant}_final_{k}": v for k, v in f["final_mean"].items()})
        headline[f"fidelity_{variant}_converged_seeds"] = float(f["converged_seeds"])
    mlflow.log_metrics(headline)
    mlflow.log_metric("seg_consistency_dice", metrics["synthesis"]["seg_consistency_dice"])
    mlflow.set_tags({"test_split_sha256": metrics["test_split_sha256"],
                     "primary_registered": str(metrics["primary"]["registered"]).lower()})
    return headline


def _prefect_artifacts(markdown: str, test: dict[str, dict[str, float]]) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(markdown=markdown, key="liversynth-report", description="Does synthetic MRI help?")
    create_table_artifact(table=[{"arm": arm, **{k: round(float(v), 4) for k, v in values.items()}}
                                 for arm, values in test.items()],
                          key="liversynth-test-scores", description="Test split, every arm (mean over seeds)")


def _unet_curves() -> dict[str, tuple[list[int], list[float]]]:
    series: dict[str, tuple[list[int], list[float]]] = {}
    with paths.UNET_HISTORY.open() as fh:
        for row in csv.DictReader(fh):
            if row["val_iou"]:
                xs, ys = series.setdefault(f"{row['arm']} seed {row['seed']}", ([], []))
                xs.append(int(row["step"]))
                ys.append(float(row["val_iou"]))
    return series


def _figures(result: dict, tune: dict) -> dict[str, Path]:
    fig, ppi = paths.EVALUATE_FIGURES, result["per_patient_iou"]
    best_by_ratio: dict[float, float] = {}
    for t in tune["trials"]:  # the best trial per ratio (over the learning rates and steps tried)
        best_by_ratio[float(t["ratio"])] = max(best_by_ratio.get(float(t["ratio"]), -1.0), float(t["val_iou"]))
    trials = [{"ratio": r, "val_iou": v} for r, v in sorted(best_by_ratio.items())]
    out = {"CT | EssNet synthetic MRI | real MRI (liver contours)": paths.synthesis_grid("essnet"),
           "CT | CycleGAN synthetic MRI (ablation) | real MRI": paths.synthesis_grid("cyclegan"),
           "test IoU by arm": plots.arm_bars(ppi, fig["arms"]),
           "validation IoU versus mixing ratio (best Optuna trial per ratio)": plots.iou_vs_ratio(
               [t["ratio"] for t in trials], [t["val_iou"] for t in trials], tune["best_ratio"],
               fig["iou_vs_ratio"]),
           "test IoU per patient, paired": plots.gain_plot(ppi["real_only"], ppi["mix"], result["gain_iou"],
                                                           fig["gain"]),
           "U-Net validation IoU during training": curves(
               _unet_curves(), fig["unet_val_iou"], "U-Net validation IoU", ylabel="val IoU")}
    for variant in paths.VARIANTS:
        out[f"{variant} training losses"] = paths.variant_losses(variant)
    return {k: v for k, v in out.items() if v.exists()}


if __name__ == "__main__":
    evaluate_flow()

"""Stage `evaluate`: test-split IoU/Dice of both arms over all seeds, and the paired gain with its CI.

The gain is resampled over test patients (slices of one patient are not independent): for each
patient the IoU of each arm is averaged over seeds, and the paired differences are bootstrapped.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient
from prefect import flow

from flows.common import load_params, stage_run
from flows.prepare import PREPARED
from flows.synthesize import SYNTH_METRICS, SYNTHETIC, synthesis_metrics_path, synthetic_dir
from flows.train_unet import HISTORY, UNET_DIR
from flows.tune_mix import TUNE_RESULT
from liversynth import plots, report
from liversynth.atomic import write_atomic_file, write_json
from liversynth.metrics import paired_bootstrap, segmentation_scores
from liversynth.segment import load_unet, predict
from liversynth.slices import SliceSet

METRICS = Path("metrics.json")
REPORT = Path("reports/report.html")
PER_PATIENT = Path("reports/per_patient.csv")
FIGURES = Path("reports/figures")
SUMMARY_KEYS = ("iou", "dice", "iou_pooled", "dice_pooled", "iou_slice", "dice_slice")


def evaluate_models(models: list[dict], test: SliceSet, params) -> tuple[dict, list[dict]]:
    """Score every model on the test split; return per-arm summaries, the gain, and per-patient rows."""
    rows, by_arm = [], {}
    client = MlflowClient()
    for m in models:
        model = load_unet(Path(m["path"]), params.unet)
        scores = segmentation_scores(predict(model, test.images), test.labels, test.patients)
        client.log_batch(m["run_id"], metrics=[
            mlflow.entities.Metric(f"test_{k}", scores[k], 0, 0) for k in SUMMARY_KEYS])
        by_arm.setdefault(m["arm"], []).append(scores)
        rows += [{"arm": m["arm"], "seed": m["seed"], "patient": p, **v}
                 for p, v in scores["per_patient"].items()]
    summary = {}
    for arm, runs in by_arm.items():
        summary[arm] = {k: float(np.mean([r[k] for r in runs])) for k in SUMMARY_KEYS}
        summary[arm]["iou_seed_std"] = float(np.std([r["iou"] for r in runs]))
        summary[arm]["n_seeds"] = len(runs)
    patients = sorted(by_arm["real_only"][0]["per_patient"])
    per_patient = {arm: np.array([np.mean([r["per_patient"][p]["iou"] for r in runs]) for p in patients])
                   for arm, runs in by_arm.items()}

    def gain(a: str, b: str) -> dict:
        """Paired over test patients: each patient's IoU averaged over seeds, arm a minus arm b."""
        return paired_bootstrap(per_patient[a] - per_patient[b], params.evaluate.n_bootstrap,
                                params.evaluate.ci, seed=params.seed)

    gains = {"gain_iou": gain("mix", "real_only")}
    if "mix_cyclegan" in per_patient:
        gains["gain_iou_cyclegan"] = gain("mix_cyclegan", "real_only")
        gains["gain_iou_essnet_vs_cyclegan"] = gain("mix", "mix_cyclegan")
    return {"test": summary, **gains, "patients": patients,
            "per_patient_iou": {arm: v.tolist() for arm, v in per_patient.items()}}, rows


@flow(name="evaluate")
def evaluate_flow() -> dict:
    params = load_params()
    models = json.loads((UNET_DIR / "models.json").read_text())
    tune = json.loads(TUNE_RESULT.read_text())
    test = SliceSet.load(PREPARED / "mri_test")
    with stage_run(params, "evaluate", ("evaluate",)):
        result, rows = evaluate_models(models, test, params)
        metrics = {"test": result["test"], "best_ratio": tune["best_ratio"],
                   **{k: v for k, v in result.items() if k.startswith("gain_iou")},
                   "n_test_patients": len(result["patients"]), "seeds": list(params.evaluate.seeds),
                   "ci": params.evaluate.ci,
                   "synthesis": {**json.loads(SYNTH_METRICS.read_text()),
                                 "seg_consistency_dice": segmentation_consistency(models, params, SYNTHETIC)},
                   "synthesis_cyclegan": {**json.loads(synthesis_metrics_path("cyclegan").read_text()),
                                          "seg_consistency_dice": segmentation_consistency(
                                              models, params, synthetic_dir("cyclegan"))}}
        for arm, values in result["test"].items():
            mlflow.log_metrics({f"{arm}_test_{k}": v for k, v in values.items()})
        for key in (k for k in result if k.startswith("gain_iou")):
            mlflow.log_metrics({f"{key}_{k}": v for k, v in result[key].items()})
        figures = _figures(result, tune)
        for fig in figures.values():
            mlflow.log_artifact(str(fig), "figures")
        synthesis = {"EssNet": metrics["synthesis"], "CycleGAN (ablation)": metrics["synthesis_cyclegan"]}
        page = report.render_html(metrics, synthesis, figures,
                                  [[r["patient"], r["arm"], str(r["seed"]), f"{r['iou']:.4f}", f"{r['dice']:.4f}"]
                                   for r in rows])
        write_atomic_file(REPORT, page)
        mlflow.log_artifact(str(REPORT))
        mlflow.log_metric("seg_consistency_dice", metrics["synthesis"]["seg_consistency_dice"])
        _prefect_artifact(report.render_markdown(metrics, synthesis))
    write_json(METRICS, metrics)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["arm", "seed", "patient", "iou", "dice"])
    writer.writeheader()
    writer.writerows(rows)
    write_atomic_file(PER_PATIENT, buf.getvalue())
    return metrics


def segmentation_consistency(models: list[dict], params, synthetic_path: Path) -> float:
    """Dice of a real-MRI-only U-Net on synthetic MRI against the carried-over CT label.

    High when the synthetic liver looks like a real MRI liver where the CT said it is: a
    translation-quality score that needs no downloaded feature extractor.
    """
    real_only = next(m for m in models if m["arm"] == "real_only")
    synthetic = SliceSet.load(synthetic_path)
    pred = predict(load_unet(Path(real_only["path"]), params.unet), synthetic.images)
    return segmentation_scores(pred, synthetic.labels, synthetic.patients)["dice_pooled"]


def _prefect_artifact(markdown: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=markdown, key="liversynth-report", description="Does synthetic MRI help?")


def _figures(result: dict, tune: dict) -> dict[str, Path]:
    FIGURES.mkdir(parents=True, exist_ok=True)
    trials = tune["trials"]
    out = {"CT | EssNet synthetic MRI | real MRI (liver contours)": FIGURES / "synthesis_grid_essnet.png",
           "CT | CycleGAN synthetic MRI (ablation) | real MRI": FIGURES / "synthesis_grid_cyclegan.png",
           "test IoU by arm and seed": plots.arm_bars(result["per_patient_iou"], FIGURES / "arms.png"),
           "validation IoU versus mixing ratio (Optuna trials)": plots.iou_vs_ratio(
               [t["ratio"] for t in trials], [t["val_iou"] for t in trials], tune["best_ratio"],
               FIGURES / "iou_vs_ratio.png"),
           "test IoU per patient, paired": plots.gain_plot(
               result["per_patient_iou"]["real_only"], result["per_patient_iou"]["mix"], result["gain_iou"],
               FIGURES / "gain.png")}
    if HISTORY.exists():
        series: dict = {}
        with HISTORY.open() as fh:
            for row in csv.DictReader(fh):
                if row["val_iou"]:
                    xs, ys = series.setdefault(f"{row['arm']} seed {row['seed']}", ([], []))
                    xs.append(int(row["step"]))
                    ys.append(float(row["val_iou"]))
        out["U-Net validation IoU during training"] = plots.curves(
            series, FIGURES / "unet_val_iou.png", "U-Net validation IoU", ylabel="val IoU")
    for variant in ("essnet", "cyclegan"):
        out[f"{variant} training losses"] = FIGURES / f"{variant}_losses.png"
    return {k: v for k, v in out.items() if v.exists()}


if __name__ == "__main__":
    evaluate_flow()

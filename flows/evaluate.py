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
from flows.train_unet import HISTORY, UNET_DIR
from flows.tune_mix import TUNE_RESULT
from liversynth import plots
from liversynth.atomic import write_atomic_file, write_json
from liversynth.metrics import paired_bootstrap, segmentation_scores
from liversynth.segment import load_unet, predict
from liversynth.slices import SliceSet

METRICS = Path("metrics.json")
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

    def per_patient_mean(arm: str) -> np.ndarray:
        return np.array([np.mean([r["per_patient"][p]["iou"] for r in by_arm[arm]]) for p in patients])

    real, mix = per_patient_mean("real_only"), per_patient_mean("mix")
    gain = paired_bootstrap(mix - real, params.evaluate.n_bootstrap, params.evaluate.ci, seed=params.seed)
    return {"test": summary, "gain_iou": gain, "patients": patients,
            "per_patient_iou": {"real_only": real.tolist(), "mix": mix.tolist()}}, rows


@flow(name="evaluate")
def evaluate_flow() -> dict:
    params = load_params()
    models = json.loads((UNET_DIR / "models.json").read_text())
    tune = json.loads(TUNE_RESULT.read_text())
    test = SliceSet.load(PREPARED / "mri_test")
    with stage_run(params, "evaluate", ("evaluate",)):
        result, rows = evaluate_models(models, test, params)
        metrics = {"test": result["test"], "gain_iou": result["gain_iou"], "best_ratio": tune["best_ratio"],
                   "n_test_patients": len(result["patients"]), "seeds": list(params.evaluate.seeds)}
        for arm, values in result["test"].items():
            mlflow.log_metrics({f"{arm}_test_{k}": v for k, v in values.items()})
        mlflow.log_metrics({f"gain_iou_{k}": v for k, v in result["gain_iou"].items()})
        figures = _figures(result, tune)
        for fig in figures:
            mlflow.log_artifact(str(fig), "figures")
    write_json(METRICS, metrics)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["arm", "seed", "patient", "iou", "dice"])
    writer.writeheader()
    writer.writerows(rows)
    write_atomic_file(PER_PATIENT, buf.getvalue())
    return metrics


def _figures(result: dict, tune: dict) -> list[Path]:
    FIGURES.mkdir(parents=True, exist_ok=True)
    trials = tune["trials"]
    out = [plots.iou_vs_ratio([t["ratio"] for t in trials], [t["val_iou"] for t in trials],
                              tune["best_ratio"], FIGURES / "iou_vs_ratio.png"),
           plots.gain_plot(result["per_patient_iou"]["real_only"], result["per_patient_iou"]["mix"],
                           result["gain_iou"], FIGURES / "gain.png")]
    if HISTORY.exists():
        series: dict = {}
        with HISTORY.open() as fh:
            for row in csv.DictReader(fh):
                if row["val_iou"]:
                    xs, ys = series.setdefault(f"{row['arm']} seed {row['seed']}", ([], []))
                    xs.append(int(row["step"]))
                    ys.append(float(row["val_iou"]))
        out.append(plots.curves(series, FIGURES / "unet_val_iou.png", "U-Net validation IoU",
                                ylabel="val IoU"))
    return out


if __name__ == "__main__":
    evaluate_flow()

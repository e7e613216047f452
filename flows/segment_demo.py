"""Stage `segment_demo`: the champion (the challenger if the gate promoted none) segments one held-out
MRI test volume straight from data/raw, as a user's scan would be: mask on the scan's own grid, liver
volume, Dice against the reference mask, and an overlay figure in reports/."""
from __future__ import annotations

import json
from pathlib import Path

import mlflow
from prefect import flow

from flows.common import start_stage
from liversynth import paths
from liversynth.data.readers import reader_for
from liversynth.inference.apply import segment_scan
from liversynth.inference.loading import load_registered
from liversynth.inference.overlay import overlay_figure
from liversynth.inference.scan import read_scan, write_on_grid
from liversynth.tracking.runs import stage_run
from liversynth.utils.files import write_json


@flow(name="segment_demo")
def segment_demo_flow() -> dict:
    params = start_stage()
    data = params.data
    patient = json.loads((paths.PREPARED / "manifest.json").read_text())["splits"]["mri_test"]["patients"][0]
    reader = reader_for(data.dataset, mr_sequence=data.mr_sequence)
    raw = Path(data.raw_dir)
    registry = json.loads(paths.REGISTRY_REPORT.read_text())
    alias = "champion" if registry.get("champion_version") else "challenger"
    uri = f"models:/{params.register.unet_name}@{alias}"
    with stage_run(params, "segment_demo", model_uri=uri):
        model = load_registered(uri, mlflow.get_tracking_uri())
        scan = read_scan(reader.patient_dir(raw, "mri", patient), data.mr_sequence)
        mask, ml = segment_scan(model.module, model.spec, scan)
        write_on_grid(scan, mask, paths.SEGMENT_DEMO_MASK)
        truth = reader.read_patient(raw, "mri", patient, data.liver_label["mri"], data.label_values.get("mri")).label
        dice = float(2 * (mask & truth).sum() / max(int(mask.sum() + truth.sum()), 1))
        title = f"{model.name} v{model.version} ({alias}) on test patient {patient}: {ml:.0f} mL, Dice {dice:.3f}"
        overlay_figure(scan.image, mask, paths.SEGMENT_DEMO_FIGURE, title, truth)
        mlflow.log_metrics({"liver_ml": ml, "dice": dice})
        mlflow.log_artifact(str(paths.SEGMENT_DEMO_FIGURE))
    report = {"model": uri, "version": model.version, "patient": patient, "scan": str(scan.source),
              "liver_ml": ml, "reference_ml": float(truth.sum()) * scan.voxel_ml, "dice": dice,
              "mask": str(paths.SEGMENT_DEMO_MASK), "figure": str(paths.SEGMENT_DEMO_FIGURE),
              "shape": list(scan.shape)}
    write_json(paths.SEGMENT_DEMO, report)
    return report


if __name__ == "__main__":
    segment_demo_flow()

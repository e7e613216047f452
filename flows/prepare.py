"""Stage `prepare`: raw volumes -> normalised 2D slices with patient-level splits."""
from __future__ import annotations

from pathlib import Path

import mlflow
from prefect import flow

from flows.common import link_run, start_stage
from liversynth.data.prepare import prepare_dataset
from liversynth.paths import PREPARED
from liversynth.tracking.runs import stage_run


@flow(name="prepare")
def prepare_flow() -> dict:
    params = start_stage()
    manifest = prepare_dataset(params, Path(params.data.raw_dir), PREPARED)
    with stage_run(params, "prepare", ("data", "prepare"), on_open=link_run):
        mlflow.log_metrics({f"slices_{k}": v["slices"] for k, v in manifest["splits"].items()})
        mlflow.log_metrics({f"patients_{k}": len(v["patients"]) for k, v in manifest["splits"].items()})
        mlflow.log_dict(manifest, "manifest.json")
    return manifest


if __name__ == "__main__":
    prepare_flow()

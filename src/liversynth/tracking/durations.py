"""Do the runs of one pipeline last what their work lasted? The check behind reports/run_durations.json.

A run's duration in the MLflow UI is its end minus its start. Each training run (generator seed, U-Net,
tuning trial) logs `wall_s`, the wall-clock seconds its worker spent on it (liversynth.tracking.live);
the pipeline run should span the `dvc repro` that `make run` timed. Runs logged after the fact, as
before, last milliseconds whatever the work, and fail this check.
"""
from __future__ import annotations

from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from liversynth.tracking.live import RESUMED_TAG, WALL_METRIC
from liversynth.tracking.runs import PIPELINE_TAG

__all__ = ["TOLERANCE", "run_durations"]

TOLERANCE = 0.10  # a run's duration within 10% of its wall time


def _seconds(run: Run) -> float | None:
    info = run.info
    return None if info.end_time is None else (info.end_time - info.start_time) / 1000.0


def _training_row(run: Run) -> dict[str, Any]:
    duration, wall = _seconds(run), float(run.data.metrics[WALL_METRIC])
    resumed = run.data.tags.get(RESUMED_TAG) == "true"  # its duration also holds the time it lay killed
    ratio = duration / wall if duration is not None and wall > 0 else float("nan")
    return {"run": run.info.run_name, "kind": run.data.tags.get("kind", ""), "status": run.info.status,
            "duration_s": duration, "wall_s": round(wall, 3), "ratio": round(ratio, 4), "resumed": resumed,
            "within": resumed or abs(ratio - 1.0) <= TOLERANCE}


def run_durations(experiment_id: str, pipeline_id: str, repro_start: float | None = None,
                  repro_end: float | None = None) -> dict[str, Any]:
    """Every training run of pipeline `pipeline_id` (duration against its `wall_s`), every stage run's
    duration, and the pipeline run against the repro's wall-clock span [repro_start, repro_end] (epoch s)."""
    client = MlflowClient()
    runs = client.search_runs([experiment_id], f"tags.`{PIPELINE_TAG}` = '{pipeline_id}'", max_results=10000)
    trainings = [_training_row(r) for r in runs if WALL_METRIC in r.data.metrics]
    stages = [{"run": r.info.run_name, "duration_s": _seconds(r), "status": r.info.status} for r in runs
              if "stage" in r.data.tags and WALL_METRIC not in r.data.metrics and r.data.tags.get("kind") != "pipeline"]
    pipeline = next((r for r in runs if r.data.tags.get("kind") == "pipeline"), None)
    out: dict[str, Any] = {"pipeline_id": pipeline_id, "tolerance": TOLERANCE,
                           "trainings": {"n": len(trainings), "within": sum(t["within"] for t in trainings),
                                         "worst_ratio": max((abs(t["ratio"] - 1) for t in trainings
                                                             if not t["resumed"]), default=None)},
                           "training_runs": trainings, "stage_runs": stages}
    if pipeline is not None:
        span = _seconds(pipeline)
        out["pipeline"] = {"run": pipeline.info.run_name, "duration_s": span}
        if repro_start is not None and repro_end is not None and span is not None:
            wall = repro_end - repro_start
            out["pipeline"].update({"repro_wall_s": round(wall, 1), "ratio": round(span / wall, 4) if wall > 0 else None,
                                    "within": wall > 0 and abs(span / wall - 1.0) <= TOLERANCE})
    return out

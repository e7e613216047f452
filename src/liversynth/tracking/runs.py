"""One MLflow run per stage run: the store, lineage tags, runs left RUNNING by a killed process, reopening.

Tracking stays outside the training loops: the library's loops return losses as values and call
back; these helpers are what the flows wrap around them.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from liversynth.config import Params
from liversynth.runtime.machine import machine_record
from liversynth.tracking.lineage import dvc_data_hash, git_commit
from liversynth.utils.connectivity import check_tracking_store
from liversynth.utils.files import write_atomic_file
from liversynth.utils.process import owner_alive, owner_id

__all__ = ["OWNER_TAG", "close_stale_runs", "lineage_tags", "recorded_run", "save_run", "saved_run",
           "setup_mlflow", "stage_run"]

# "<host>:<pid>" of the process running a stage's MLflow run, so a later start of the stage can tell
# a run whose process was killed (-9 never ends its run) from one still going (parallel tune workers).
OWNER_TAG = "liversynth.owner"


def setup_mlflow(params: Params) -> str:
    """Point MLflow at the store (MLFLOW_TRACKING_URI, else params) and return the experiment id."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", params.mlflow.tracking_uri)
    check_tracking_store(uri)  # unreachable or read-only: one line naming the URL, in seconds
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(params.mlflow.experiment)
    if exp is None:
        artifacts = Path(params.mlflow.artifact_dir).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        exp_id = mlflow.create_experiment(params.mlflow.experiment, artifact_location=artifacts.as_uri())
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return str(exp_id)


def lineage_tags(params: Params, stage: str) -> dict[str, str]:
    return {"stage": stage, "git_commit": git_commit(), "data_dvc_md5": dvc_data_hash(),
            "dataset": params.data.dataset, OWNER_TAG: owner_id(),
            **{f"machine.{k}": v for k, v in machine_record().items()}}


def close_stale_runs(experiment_id: str, stage: str, keep: str | None = None) -> list[str]:
    """Mark FAILED the RUNNING runs of `stage` whose process is gone, and their RUNNING children
    (e.g. tuning trials); `keep` is a run about to be resumed. Returns the ids closed."""
    client = MlflowClient()
    running = client.search_runs([experiment_id], f"tags.stage = '{stage}' and attributes.status = 'RUNNING'",
                                 max_results=1000)
    stale = {r.info.run_id for r in running
             if r.info.run_id != keep and OWNER_TAG in r.data.tags and not owner_alive(r.data.tags[OWNER_TAG])}
    stale |= {r.info.run_id for r in running
              if r.info.run_id != keep and r.data.tags.get("mlflow.parentRunId") in stale}
    for run_id in sorted(stale):
        client.set_tag(run_id, "interrupted", "true")
        client.set_terminated(run_id, "FAILED")
    return sorted(stale)


@contextlib.contextmanager
def stage_run(params: Params, stage: str, sections: tuple[str, ...] = (), resume_run_id: str | None = None,
              **tags: str) -> Iterator[Run]:
    """One MLflow run per stage run, tagged with code and data versions and the stage's params.

    With `resume_run_id` (an interrupted training), that run is reopened instead of starting a new one.
    """
    experiment_id = setup_mlflow(params)
    if resume_run_id:
        try:
            mlflow.get_run(resume_run_id)
        except mlflow.exceptions.MlflowException:
            resume_run_id = None
    close_stale_runs(experiment_id, stage, keep=resume_run_id)
    with mlflow.start_run(run_id=resume_run_id, run_name=None if resume_run_id else stage,
                          tags={**lineage_tags(params, stage), **tags}) as run:
        for name in sections:
            mlflow.log_params({f"{name}.{k}": v for k, v in params.section(name).items()})
        yield run


def saved_run(path: Path, key: str) -> str | None:
    """The MLflow run id recorded for this same work (same key), if any: only that run is reopened,
    so a rerun with other params or data starts a new run instead of mixing the two."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    run_id = record.get("run_id") if isinstance(record, dict) and record.get("key") == key else None
    return str(run_id) if run_id else None


def save_run(path: Path, key: str, run_id: str) -> None:
    write_atomic_file(Path(path), json.dumps({"run_id": run_id, "key": key}))


@contextlib.contextmanager
def recorded_run(record: Path, key: str, start: Callable[[str | None], AbstractContextManager[Any]],
                 resume: bool = True) -> Iterator[Any]:
    """Start a run through `start(run_id_or_None)`, reopening the one `record` holds for `key`
    (when `resume`, e.g. a checkpoint exists), and record the run's id for the next interrupted try."""
    with start(saved_run(record, key) if resume else None) as run:
        save_run(record, key, run.info.run_id)
        yield run

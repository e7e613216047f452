"""One MLflow run per stage run: the store, lineage tags, runs left RUNNING by a killed process, reopening;
one pipeline run per `dvc repro` / `dvc exp run` that groups them; datasets as run inputs.

Tracking stays outside the training loops: the library's loops return losses as values and call
back; these helpers are what the flows wrap around them.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import mlflow
from pydantic import BaseModel
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient

from liversynth.config import Params
from liversynth.runtime.machine import machine_record
from liversynth.tracking.lineage import dvc_data_hash, git_commit
from liversynth.tracking.store import resolve_artifact_dir, resolve_tracking_uri
from liversynth.utils.connectivity import check_tracking_store
from liversynth.utils.files import write_atomic_file
from liversynth.utils.hashing import fingerprint
from liversynth.utils.process import owner_alive, owner_id

__all__ = ["EXPERIMENT_KIND", "OWNER_TAG", "PIPELINE_ID_ENV", "PIPELINE_START_ENV", "PIPELINE_TAG", "REOPENED_TAG",
           "close_stale_runs", "end_pipeline_run", "flat_params", "lineage_tags", "log_dataset", "log_pipeline_metrics",
           "pipeline_id", "pipeline_run", "recorded_run", "reopened_run", "run_url", "save_run", "saved_run",
           "setup_mlflow", "stage_run"]

# The owner "<host>:<pid>@<start>" (liversynth.utils.process.owner_id) of the process running an MLflow
# run, so any stage that starts can tell a run whose process was killed (-9 never ends its run) from
# one still going (parallel tuning workers).
OWNER_TAG = "liversynth.owner"
# MLflow 3's UI opens an experiment on its GenAI overview unless it is marked as model training.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# One id per `dvc repro`: set once by `make run` / flows.pipeline, else derived (see `pipeline_id`).
PIPELINE_ID_ENV = "LIVERSYNTH_PIPELINE_ID"
PIPELINE_TAG = "liversynth.pipeline_id"
# When the `dvc repro` began (epoch seconds): the pipeline run starts there (`make run` sets it).
PIPELINE_START_ENV = "LIVERSYNTH_PIPELINE_START"
# The status a run had when `reopened_run` reopened it: a kill while it is open restores that status.
REOPENED_TAG = "liversynth.reopened_from"


def setup_mlflow(params: Params) -> str:
    """Point MLflow at the store (MLFLOW_TRACKING_URI, else params) and return the experiment id.
    A relative store is the project root's, from any workspace (liversynth.tracking.store)."""
    uri = resolve_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", params.mlflow.tracking_uri))
    check_tracking_store(uri)  # unreachable or read-only: one line naming the URL, in seconds
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(params.mlflow.experiment)
    if exp is None:
        artifacts = resolve_artifact_dir(params.mlflow.artifact_dir).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        exp_id = mlflow.create_experiment(params.mlflow.experiment, artifact_location=artifacts.as_uri(),
                                          tags=EXPERIMENT_KIND)
    else:
        exp_id = exp.experiment_id
        for key, value in EXPERIMENT_KIND.items():
            if exp.tags.get(key) != value:
                MlflowClient().set_experiment_tag(exp_id, key, value)
    mlflow.set_experiment(experiment_id=exp_id)
    return str(exp_id)


def lineage_tags(params: Params, stage: str) -> dict[str, str]:
    return {"stage": stage, "git_commit": git_commit(), "data_dvc_md5": dvc_data_hash(),
            "dataset": params.data.dataset, OWNER_TAG: owner_id(), PIPELINE_TAG: pipeline_id(params),
            **_dvc_exp_tags(), **{f"machine.{k}": v for k, v in machine_record().items()}}


def flat_params(params: Params) -> dict[str, str]:
    """Every parameter as `section.key` -> value (top-level scalars as they are), for MLflow params."""
    out: dict[str, str] = {}
    for name in type(params).model_fields:
        value = getattr(params, name)
        if isinstance(value, BaseModel):
            out.update({f"{name}.{k}": str(v) for k, v in params.section(name).items()})
        else:
            out[name] = str(value)
    return out


def _dvc_exp_tags() -> dict[str, str]:
    names = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.baseline_rev"}
    return {tag: os.environ[env] for env, tag in names.items() if os.environ.get(env)}


def pipeline_id(params: Params) -> str:
    """Which `dvc repro` / `dvc exp run` a stage belongs to: LIVERSYNTH_PIPELINE_ID when set (once per
    repro), else the DVC experiment name and baseline revision, else the git commit; plus a hash of
    every param, so two experiments from one commit are two pipelines."""
    explicit = os.environ.get(PIPELINE_ID_ENV)
    if explicit:
        return explicit
    exp = _dvc_exp_tags()
    base = exp.get("dvc.baseline_rev") or git_commit().removesuffix("-dirty")
    prefix = f"{exp['dvc.exp_name']}-" if "dvc.exp_name" in exp else ""
    return f"{prefix}{base[:10]}-{fingerprint(flat_params(params), length=8)}"


def pipeline_run(params: Params, experiment_id: str) -> str:
    """The id of this pipeline's run (kind=pipeline), created on first use with every param.

    It starts when the `dvc repro` started ($LIVERSYNTH_PIPELINE_START, epoch seconds, set by `make run`
    and `make study`; else when its first stage opened it), and each stage that ends moves its end to
    that moment (`end_pipeline_run`), so it spans the whole repro. It is FINISHED throughout (no process
    owns it, so none can leave it RUNNING); stages nest under it and `log_pipeline_metrics` fills in
    the headline numbers later."""
    client, pid = MlflowClient(), pipeline_id(params)
    found = client.search_runs([experiment_id], f"tags.`{PIPELINE_TAG}` = '{pid}' and tags.kind = 'pipeline'",
                               max_results=1)
    if found:
        return found[0].info.run_id
    exp = _dvc_exp_tags()
    label = exp.get("dvc.exp_name") or pid
    tags = {"kind": "pipeline", PIPELINE_TAG: pid, "git_commit": git_commit(), "data_dvc_md5": dvc_data_hash(),
            "dataset": params.data.dataset, **exp, **{f"machine.{k}": v for k, v in machine_record().items()}}
    started = os.environ.get(PIPELINE_START_ENV)
    run = client.create_run(experiment_id, run_name=f"pipeline[{label}]", tags=tags,
                            start_time=int(float(started) * 1000) if started else None)
    items = [Param(k, v) for k, v in flat_params(params).items()]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run.info.run_id, params=items[start : start + 100])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def end_pipeline_run(run_id: str) -> None:
    """The pipeline run ends now (a stage of it just ended): FINISHED, its end moved forward only."""
    client = MlflowClient()
    info = client.get_run(run_id).info
    now = int(time.time() * 1000)
    if info.end_time is None or info.end_time < now:
        client.set_terminated(run_id, "FINISHED", end_time=now)


def log_pipeline_metrics(params: Params, metrics: dict[str, float]) -> str:
    """Log headline metrics (e.g. every arm's test IoU, the primary gain and its CI) on the pipeline run."""
    run_id = pipeline_run(params, setup_mlflow(params))
    MlflowClient().log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
                             tags=[RunTag("headline", "true")])
    return run_id


def run_url(run: Run) -> str:
    """The run's page in the MLflow UI: the tracking server's, else `make ui`'s (127.0.0.1:5000)."""
    uri = mlflow.get_tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


def log_dataset(name: str, source: str, digest: str, context: str, features: Any, targets: Any = None,
                run_id: str | None = None) -> None:
    """Log a dataset as an input of the active run (or of `run_id`, whatever its status, through the
    client): name, source path, DVC md5 as digest, schema. The source is given as a local one: a bare
    path string matches two registered source types and MLflow warns that it "can be interpreted in
    multiple ways" on every stage."""
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    local = get_dataset_source_from_json(json.dumps({"uri": source}), source_type="local")
    dataset = from_numpy(features, source=local, targets=targets, name=name, digest=digest[:36])
    if run_id is None:
        mlflow.log_input(dataset, context=context)
        return
    entry = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
    MlflowClient().log_inputs(run_id, datasets=[entry])


def close_stale_runs(experiment_id: str, keep: str | None = None) -> list[str]:
    """Close the RUNNING runs whose owning process is gone, whatever stage opened them, and their
    RUNNING children (e.g. tuning trials); `keep` is a run about to be resumed. A run that had finished
    and was reopened to log into it (`reopened_run`) is finished again with its own end time, tagged
    `reopen_interrupted`; any other is marked FAILED, tagged `interrupted`. Returns the ids closed."""
    client = MlflowClient()
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    stale = {r.info.run_id for r in running
             if r.info.run_id != keep and OWNER_TAG in r.data.tags and not owner_alive(r.data.tags[OWNER_TAG])}
    stale |= {r.info.run_id for r in running
              if r.info.run_id != keep and r.data.tags.get("mlflow.parentRunId") in stale}
    for run in (r for r in running if r.info.run_id in stale):
        if run.data.tags.get(REOPENED_TAG) == "FINISHED":
            client.set_tag(run.info.run_id, "reopen_interrupted", "true")
            client.set_terminated(run.info.run_id, "FINISHED", end_time=run.info.end_time)  # reopening kept it
        else:
            client.set_tag(run.info.run_id, "interrupted", "true")
            client.set_terminated(run.info.run_id, "FAILED")
    return sorted(stale)


@contextlib.contextmanager
def reopened_run(run: Run) -> Iterator[mlflow.ActiveRun]:
    """Reopen a finished run (nested under the active one) to log into it, e.g. a model into the run
    that trained it; it is finished again with its own end time, so the UI shows its training's duration.

    This process becomes its owner before it is reopened: MLflow marks a run RUNNING before it logs
    start_run's tags, and a kill in between must leave a run that `close_stale_runs` can tell is dead."""
    run_id, client = run.info.run_id, MlflowClient()
    client.log_batch(run_id, tags=[RunTag(OWNER_TAG, owner_id()), RunTag(REOPENED_TAG, run.info.status)])
    with mlflow.start_run(run_id=run_id, nested=True) as active:
        yield active
    client.set_terminated(run_id, run.info.status, end_time=run.info.end_time)


@contextlib.contextmanager
def stage_run(params: Params, stage: str, sections: tuple[str, ...] = (), resume_run_id: str | None = None,
              run_name: str | None = None, system_metrics: bool = False,
              on_open: Callable[[Run], None] | None = None, **tags: str) -> Iterator[Run]:
    """One MLflow run per stage run, tagged with code and data versions and the stage's params, and
    nested under its pipeline's run. Named `stage[variant]` when a variant tag is given.

    With `resume_run_id` (an interrupted training), that run is reopened instead of starting a new one.
    `system_metrics` samples CPU, memory (and GPU, with nvidia-ml-py) while the run is open.
    `on_open(run)` runs once the run is open: a stage flow links it from its Prefect flow run there
    (flows.common.link_run), which this library cannot do itself.
    """
    experiment_id = setup_mlflow(params)
    if resume_run_id:
        try:
            mlflow.get_run(resume_run_id)
        except mlflow.exceptions.MlflowException:
            resume_run_id = None
    close_stale_runs(experiment_id, keep=resume_run_id)
    name = run_name or (f"{stage}[{tags['variant']}]" if "variant" in tags else stage)
    pipeline = pipeline_run(params, experiment_id)
    with mlflow.start_run(run_id=resume_run_id, run_name=None if resume_run_id else name,
                          tags={**lineage_tags(params, stage), "mlflow.parentRunId": pipeline, **tags},
                          log_system_metrics=system_metrics or None) as run:
        for section in sections:
            mlflow.log_params({f"{section}.{k}": v for k, v in params.section(section).items()})
        if on_open is not None:
            on_open(run)
        try:
            yield run
        finally:
            end_pipeline_run(pipeline)


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

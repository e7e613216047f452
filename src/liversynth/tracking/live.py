"""Live MLflow runs for the trainings of a grid: each generator seed, U-Net and tuning trial has its run
from the moment it starts, streams its metrics with their step while it trains, and ends when it ends.

Why: a run logged after its training, from the returned history, lasts milliseconds in the UI and shows
nothing while the training runs; people open MLflow to watch a loss curve grow or a GAN diverge.

A worker process (a process pool's, a Dask worker's) gets a `LiveRun`: plain data, picklable. It opens
the run itself through an `MlflowClient` on the store's absolute URI, so nothing rests on MLflow's
process-global fluent state. Every metric row is written as it comes (one small write every few
seconds per worker), so a training killed after a checkpoint has every row up to it in the store, and
a write that meets another process's lock on a sqlite store waits it out instead of failing.

A training that resumes from its checkpoint reopens its own run (the run id is recorded beside the
checkpoint, with the training's identity), so its curves continue where they stopped.
"""
from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import mlflow
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from liversynth.tracking.runs import OWNER_TAG, save_run, saved_run
from liversynth.utils.connectivity import STORE_LOCK_WAIT_ENV, STORE_LOCK_WAIT_S
from liversynth.utils.process import owner_id

__all__ = ["LiveRun", "MetricStream", "RESUMED_TAG", "WALL_METRIC", "child_run", "live_run", "tracked_cell",
           "when_locked"]

RESUMED_TAG = "resumed"  # "true" on a run that a resumed training reopened
WALL_METRIC = "wall_s"  # the training's own wall-clock seconds, to check the run's duration against
T = TypeVar("T")


@dataclass(frozen=True)
class LiveRun:
    """Where one training's run goes: a child of `parent_run_id`, named `name`, with `tags` and `params`.
    `record` (beside the training's checkpoint) keeps the run id for a resumed training of the same
    `key` (the training's identity: another config or data starts a new run)."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    record: str | None = None
    key: str = ""


def child_run(parent: Run, name: str, tags: Mapping[str, str], params: Mapping[str, Any],
              record: Path | None = None, key: str = "") -> LiveRun:
    """The LiveRun of a training nested under the stage's run `parent`, with the parent's lineage tags
    (code, data, pipeline, DVC experiment, machine) and its own."""
    lineage = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
    return LiveRun(mlflow.get_tracking_uri(), parent.info.experiment_id, parent.info.run_id, name,
                   {**lineage, **tags}, dict(params), str(record) if record else None, key)


def when_locked(write: Callable[[], T], wait_s: float | None = None) -> T:
    """`write()`, tried again while a sqlite store is locked by another process (up to
    $LIVERSYNTH_STORE_LOCK_WAIT_S, default 120 s): parallel workers share one store and lose no row."""
    wait_s = float(os.environ.get(STORE_LOCK_WAIT_ENV, STORE_LOCK_WAIT_S)) if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return write()
        except MlflowException as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.1 + 0.4 * random.random())


class MetricStream:
    """The `on_metrics(step, row)` callback a training is given: each row goes to the run at once."""

    def __init__(self, client: MlflowClient, run_id: str, muted: bool = False):
        self.client, self.run_id, self.muted = client, run_id, muted

    def __call__(self, step: int, row: Mapping[str, float]) -> None:
        if self.muted:  # a finished run being restored: its rows are in the store already
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(step)) for k, v in row.items()]
        if metrics:
            when_locked(lambda: self.client.log_batch(self.run_id, metrics=metrics))


def _reopen(client: MlflowClient, spec: LiveRun) -> tuple[str, str] | None:
    """(run id, its status) of this training's earlier run, if `record` holds one for the same key."""
    run_id = saved_run(Path(spec.record), spec.key) if spec.record else None
    if run_id is None:
        return None
    try:
        return run_id, client.get_run(run_id).info.status
    except MlflowException:  # the store was reset since: start a new run
        return None


def _create(client: MlflowClient, spec: LiveRun) -> str:
    tags = {**spec.tags, "mlflow.parentRunId": spec.parent_run_id, OWNER_TAG: owner_id()}
    run = when_locked(lambda: client.create_run(spec.experiment_id, run_name=spec.name, tags=tags))
    params = [Param(k, str(v)) for k, v in spec.params.items()]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        when_locked(lambda: client.log_batch(run.info.run_id, params=params[start : start + 100]))
    return str(run.info.run_id)


@contextlib.contextmanager
def live_run(spec: LiveRun) -> Iterator[tuple[str, MetricStream]]:
    """The training's run, RUNNING from here, FINISHED when the block ends (FAILED if it raises).

    A run of this training that a kill or failure left unfinished is reopened (tag `resumed`); one that
    already FINISHED (its training only restores from the final checkpoint) is used as it is."""
    client = MlflowClient(spec.tracking_uri)
    earlier = _reopen(client, spec)
    if earlier is not None and earlier[1] == "FINISHED":
        yield earlier[0], MetricStream(client, earlier[0], muted=True)
        return
    if earlier is not None:
        run_id = earlier[0]
        when_locked(lambda: client.update_run(run_id, status="RUNNING"))
        when_locked(lambda: client.log_batch(run_id, tags=[RunTag(OWNER_TAG, owner_id()), RunTag(RESUMED_TAG, "true")]))
    else:
        run_id = _create(client, spec)
    if spec.record:
        save_run(Path(spec.record), spec.key, run_id)
    try:
        yield run_id, MetricStream(client, run_id)
    except BaseException:
        when_locked(lambda: client.set_terminated(run_id, "FAILED"))
        raise
    when_locked(lambda: client.set_terminated(run_id, "FINISHED"))


def tracked_cell(run: LiveRun, fn: Callable[..., dict[str, Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a worker runs for one training of a grid: `fn(**kwargs, on_metrics=stream)` inside its live run.
    The result gains `run_id`; the run gains `wall_s`, the training's wall-clock time (from its run's start), and
    `resumed_from_step` where the training continued a checkpoint (`resumed_from` in its result)."""
    with live_run(run) as (run_id, stream):
        began = time.monotonic()
        result = fn(**kwargs, on_metrics=stream)
        resumed = result.get("resumed_from") or result.get("model", {}).get("resumed_from")
        if resumed and not stream.muted:
            when_locked(lambda: stream.client.set_tag(run_id, "resumed_from_step", str(resumed)))
        stream(0, {WALL_METRIC: time.monotonic() - began})
    return {**result, "run_id": run_id}

"""Live training runs (liversynth.tracking.live) on a real sqlite MLflow store, from real worker processes.

A training's run exists from its start, RUNNING, with its real start time; its metrics grow between two
reads while it trains; it ends when the training ends, lasting what the training lasted. Several
workers log at once to one sqlite store with no row lost and no "database is locked". A training killed
with SIGKILL and started again continues its own run.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from liversynth.tracking.live import RESUMED_TAG, WALL_METRIC, LiveRun, tracked_cell
from liversynth.tracking.runs import close_stale_runs, save_run

OnMetrics = Callable[[int, Mapping[str, float]], None]


def paced_training(steps: int, pause_s: float, gate: str | None, on_metrics: OnMetrics,
                   start: int = 0) -> dict:
    """A training's shape: a metric row per step, with real time between steps. With `gate`, it waits at
    half way until that file exists (so the test can read the run while it trains)."""
    for step in range(start + 1, steps + 1):
        on_metrics(step, {"loss": 1.0 / step, "val_iou": step / steps})
        if gate and step == steps // 2:
            Path(gate + ".half").touch()
            while not Path(gate).exists():
                time.sleep(0.05)
        time.sleep(pause_s)
    return {"steps": steps, "resumed_from": start}


@pytest.fixture()
def store(tmp_path: Path) -> tuple[str, str, str]:
    """(tracking uri, experiment id, parent run id) of a fresh sqlite store."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("live", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, run_name="stage").info.run_id
    return uri, exp, parent


def _spec(store: tuple[str, str, str], name: str, record: Path | None = None) -> LiveRun:
    uri, exp, parent = store
    return LiveRun(uri, exp, parent, name, {"kind": "unet"}, {"arm": name}, str(record) if record else None, "k")


def _run_by_name(client: MlflowClient, exp: str, name: str):
    found = client.search_runs([exp], f"attributes.run_name = '{name}'")
    return found[0] if found else None


def test_a_run_is_running_from_the_start_and_its_metrics_grow_while_it_trains(store, tmp_path):
    uri, exp, _ = store
    client = MlflowClient(uri)
    gate = str(tmp_path / "gate")
    began = time.time()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(tracked_cell, _spec(store, "live"), paced_training,
                             {"steps": 40, "pause_s": 0.05, "gate": gate})
        while not Path(gate + ".half").exists():
            assert not future.done(), future.exception()
            time.sleep(0.05)
        run = _run_by_name(client, exp, "live")
        assert run is not None and run.info.status == "RUNNING"
        assert run.info.start_time / 1000 >= began - 1
        first = len(client.get_metric_history(run.info.run_id, "loss"))
        assert first == 20  # every row up to now is in the store while it trains
        Path(gate).touch()
        while len(client.get_metric_history(run.info.run_id, "loss")) == first and not future.done():
            time.sleep(0.05)
        assert len(client.get_metric_history(run.info.run_id, "loss")) > first
        result = future.result()
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == store[2]
    assert run.data.params["arm"] == "live" and run.data.tags["kind"] == "unet"
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
    assert steps == list(range(1, 41))
    duration = (run.info.end_time - run.info.start_time) / 1000
    assert abs(duration / run.data.metrics[WALL_METRIC] - 1) <= 0.10, (duration, run.data.metrics[WALL_METRIC])


def test_workers_log_at_once_to_one_sqlite_store_and_lose_no_row(store):
    uri, exp, _ = store
    names = [f"w{i}" for i in range(4)]
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(tracked_cell, _spec(store, name), paced_training,
                               {"steps": 150, "pause_s": 0.0, "gate": None}) for name in names]
        results = [f.result() for f in futures]  # a "database is locked" would raise here
    client = MlflowClient(uri)
    for result in results:
        history = client.get_metric_history(result["run_id"], "val_iou")
        assert sorted(m.step for m in history) == list(range(1, 151))
        assert client.get_run(result["run_id"]).info.status == "FINISHED"


def _killed_training(spec: LiveRun, gate: str) -> None:
    tracked_cell(spec, paced_training, {"steps": 40, "pause_s": 0.01, "gate": gate})


def test_a_training_killed_and_started_again_continues_its_own_run(store, tmp_path):
    uri, exp, _ = store
    client = MlflowClient(uri)
    record = tmp_path / "cell.mlflow_run"
    gate = str(tmp_path / "gate")
    worker = multiprocessing.get_context("spawn").Process(target=_killed_training,
                                                          args=(_spec(store, "resumable", record), gate))
    worker.start()
    while not Path(gate + ".half").exists():
        assert worker.is_alive()
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)  # no handler runs: the run is left RUNNING
    worker.join()
    killed = _run_by_name(client, exp, "resumable")
    assert killed.info.status == "RUNNING"
    mlflow.set_tracking_uri(uri)
    assert killed.info.run_id in close_stale_runs(exp)  # the next stage finds its owner dead
    assert client.get_run(killed.info.run_id).info.status == "FAILED"

    # Started again (as a resumed training would, from its checkpoint at step 20): the same run continues.
    result = tracked_cell(_spec(store, "resumable", record), paced_training,
                          {"steps": 40, "pause_s": 0.0, "gate": None, "start": 20})
    assert result["run_id"] == killed.info.run_id
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags[RESUMED_TAG] == "true"
    assert run.data.tags["resumed_from_step"] == "20"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == list(range(1, 41))
    assert len(client.search_runs([exp], "attributes.run_name = 'resumable'")) == 1

    # Another training (another key) with the same record starts its own run.
    save_run(record, "another key", run.info.run_id)
    other = tracked_cell(_spec(store, "resumable", record), paced_training, {"steps": 2, "pause_s": 0.0, "gate": None})
    assert other["run_id"] != run.info.run_id


def test_dask_workers_stream_to_their_own_runs(store):
    """The same from a real Dask LocalCluster (LIVERSYNTH_TASK_RUNNER=dask): 2 worker processes at once."""
    from dask.distributed import Client, LocalCluster

    uri, exp, _ = store
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        futures = [client.submit(tracked_cell, _spec(store, f"dask{i}"), paced_training,
                                 {"steps": 60, "pause_s": 0.0, "gate": None}, pure=False) for i in range(2)]
        results = client.gather(futures)
    mlflow_client = MlflowClient(uri)
    assert len({r["run_id"] for r in results}) == 2
    for result in results:
        assert sorted(m.step for m in mlflow_client.get_metric_history(result["run_id"], "loss")) == list(range(1, 61))
        assert mlflow_client.get_run(result["run_id"]).info.status == "FINISHED"

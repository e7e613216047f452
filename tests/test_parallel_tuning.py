"""Parallel tuning: worker processes sharing one study run every grid ratio exactly once.

The journal-file storage is always tested; a PostgreSQL one too when LIVERSYNTH_TEST_POSTGRES_URL
names a database (e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/optuna).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import socket
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from liversynth.training.tuning import open_study, remaining_trials, run_trials, trial_table

RATIOS = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0)


def _objective(point: dict, trial: optuna.Trial) -> float:
    time.sleep(0.2)  # long enough for the two workers to overlap
    trial.set_user_attr("pid", os.getpid())
    return -abs(point["ratio"] - 1.0)


def _worker(storage: str, name: str, barrier) -> None:
    barrier.wait()  # both open (and enqueue) at the same moment: the worst case for duplicates
    study = open_study(storage, name, RATIOS, seed=0)
    run_trials(study, _objective)


def _completed(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = open_study(storage, name, RATIOS, seed=0)
    return study.get_trials(states=(TrialState.COMPLETE,))


@pytest.mark.parametrize("backend", ["journal", "postgres"])
def test_two_workers_complete_each_ratio_exactly_once(tmp_path: Path, backend: str) -> None:
    if backend == "journal":
        storage, name = str(tmp_path / "journal.log"), "study"
    elif os.environ.get("LIVERSYNTH_TEST_POSTGRES_URL"):
        storage, name = os.environ["LIVERSYNTH_TEST_POSTGRES_URL"], f"study-{uuid.uuid4().hex[:8]}"
    else:
        pytest.skip("set LIVERSYNTH_TEST_POSTGRES_URL to test a PostgreSQL storage")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_worker, args=(storage, name, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    done = _completed(storage, name)
    assert sorted(t.params["ratio"] for t in done) == sorted(RATIOS)  # none lost, none twice
    assert len({t.user_attrs["pid"] for t in done}) == 2  # the work really was shared
    study = open_study(storage, name, RATIOS, seed=0)  # reopening queues nothing: all are done
    assert not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))
    assert remaining_trials(study) == 0
    assert [r["ratio"] for r in trial_table(study)] == sorted(RATIOS)


def test_a_dead_workers_trial_is_queued_again(tmp_path: Path) -> None:
    storage = str(tmp_path / "journal.log")
    study = open_study(storage, "study", (0.0, 1.0), seed=0)
    stale = study.ask()  # popped from the queue, then its worker "dies"
    stale.set_user_attr("worker", f"{socket.gethostname()}:{2**22 + 12345}")  # no such pid
    stale_ratio = stale.suggest_float("ratio", 0.0, 1.0)
    again = open_study(storage, "study", (0.0, 1.0), seed=0)  # a new run marks it failed, re-queues
    assert again.trials[stale.number].state == TrialState.FAIL
    run_trials(again, _objective)
    assert sorted(t.params["ratio"] for t in again.get_trials(states=(TrialState.COMPLETE,))) == [0.0, 1.0]
    assert stale_ratio in (0.0, 1.0)


def test_completed_trials_are_reused(tmp_path: Path) -> None:
    storage = str(tmp_path / "journal.log")
    run_trials(open_study(storage, "study", (0.0, 1.0), seed=0), _objective)
    study = run_trials(open_study(storage, "study", (0.0, 1.0), seed=0), _objective)
    assert len(study.trials) == 2


def test_the_flow_picks_the_requested_engine(monkeypatch) -> None:
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.common import task_runner

    for kind, cls in (("dask", DaskTaskRunner), ("processes", ProcessPoolTaskRunner),
                      ("threads", ThreadPoolTaskRunner)):
        monkeypatch.setenv("LIVERSYNTH_TASK_RUNNER", kind)
        assert isinstance(task_runner(2), cls)
    monkeypatch.setenv("LIVERSYNTH_TASK_RUNNER", "dask")
    monkeypatch.setenv("LIVERSYNTH_DASK_ADDRESS", "tcp://scheduler:8786")
    assert task_runner(2).address == "tcp://scheduler:8786"  # an existing cluster, many machines
    monkeypatch.setenv("LIVERSYNTH_TASK_RUNNER", "spark")
    with pytest.raises(ValueError):
        task_runner(2)


def test_the_baseline_gets_as_many_trials_as_the_mix(tmp_path: Path) -> None:
    """Grid of the mix (ratio x lr) and of the baseline (lr x its own steps): same size, each run once;
    the best of each side is chosen on its own."""
    from liversynth.training.tuning import best_point, points

    grid = points((0.0, 1.0, 3.0), (5e-4, 1e-3), (500, 1000), steps=500)
    mix, base = [p for p in grid if p["ratio"] > 0], [p for p in grid if p["ratio"] == 0]
    assert len(mix) == len(base) == 4 and {p["steps"] for p in base} == {500.0, 1000.0}

    def objective(point: dict, trial: optuna.Trial) -> float:
        return point["lr"] * 1000 + point["steps"] / 1e4 - point["ratio"] / 10

    study = run_trials(open_study(str(tmp_path / "j.log"), "s", grid, seed=0), objective)
    assert len(trial_table(study)) == 8
    assert best_point(study, baseline=True) == {"ratio": 0.0, "lr": 1e-3, "steps": 1000.0}
    assert best_point(study, baseline=False) == {"ratio": 1.0, "lr": 1e-3, "steps": 500.0}

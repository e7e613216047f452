"""Queued DVC experiments, two at once, log to the project's one MLflow store.

`dvc exp run --queue` + `dvc queue start -j 2` run each experiment in a copy of the repository under
`.dvc/tmp/exps/`; the stages there must find the runs the upstream stages logged in the project's store
and log their own runs to it (liversynth.tracking.store), tagged with the experiment's name and baseline
commit, with no "database is locked" from two writers. On the session's tiny pipeline, the experiments
change `evaluate.ci` only, so only evaluate and register rerun (register completes the same unit).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run

EXPERIMENTS = {"ci90": 0.9, "ci80": 0.8}


def _wait_for_queue(repo: Path, env: dict[str, str], seconds: float) -> str:
    """`dvc queue status` once nothing is queued or running (fails the test after `seconds`)."""
    end = time.monotonic() + seconds
    while True:
        status = run(["dvc", "queue", "status"], repo, env).stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        if time.monotonic() > end:
            pytest.fail(f"the queue did not finish in {seconds:.0f} s:\n{status}")
        time.sleep(5)


def test_two_queued_experiments_log_to_the_one_store(pipeline_repo):
    repo, env, _ = pipeline_repo
    # An experiment starts from the last commit (plus tracked edits): commit what the run left for git
    # (dvc.lock, data.dvc, reports), as a user does after `make run`.
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "pipeline results", "--allow-empty"], repo, env)
    for name, ci in EXPERIMENTS.items():
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"evaluate.ci={ci}"], repo, env)
    run(["dvc", "queue", "start", "-j", "2"], repo, env)
    status = _wait_for_queue(repo, env, seconds=1500)
    for name in EXPERIMENTS:
        line = next((ln for ln in status.splitlines() if name in ln), "")
        assert "Success" in line, f"{name}:\n{status}\n{run(['dvc', 'queue', 'logs', name], repo, env, check=False).stdout[-4000:]}"
    baseline = run(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env).stdout)
    found = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                if rev.get("name") in EXPERIMENTS:
                    found[rev["name"]] = data
    assert set(found) == set(EXPERIMENTS), shown
    for name, ci in EXPERIMENTS.items():
        assert found[name]["params"]["params.yaml"]["data"]["evaluate"]["ci"] == ci
        metrics = found[name]["metrics"]["metrics.json"]["data"]
        assert 0.0 <= metrics["test"]["real_only"]["iou"] <= 1.0

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlruns/mlflow.db'}")
    exp_id = client.get_experiment_by_name("liversynth").experiment_id
    for name in EXPERIMENTS:
        runs = client.search_runs([exp_id], f"tags.`dvc.exp_name` = '{name}'", max_results=100)
        stages = {r.data.tags.get("stage") for r in runs if r.data.tags.get("kind") != "pipeline"}
        assert {"evaluate", "register"} <= stages, (name, stages)  # segment_demo: same registry.json, skipped
        assert all(r.data.tags.get("dvc.baseline_rev") == baseline for r in runs), name
        assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
        pipeline = [r for r in runs if r.data.tags.get("kind") == "pipeline"]
        assert len(pipeline) == 1 and pipeline[0].data.params["evaluate.ci"] == str(EXPERIMENTS[name])
        evaluate = next(r for r in runs if r.data.tags.get("stage") == "evaluate")
        assert evaluate.data.tags["mlflow.parentRunId"] == pipeline[0].info.run_id
    # The copies under .dvc/tmp/exps made no store of their own.
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))

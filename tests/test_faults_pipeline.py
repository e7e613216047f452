"""Fault matrix, pipeline: `kill -9` of the whole `scripts/with_prefect_api.sh dvc repro` process group
during tune_mix (a trial mid-training) and during train_unet, then a rerun to the end, while a second
`dvc repro` is started in the same repository.

One tiny pipeline in a temporary git copy is shared by every test here (real DVC, MLflow sqlite,
Prefect: the helper server of scripts/with_prefect_api.sh with its database in the copy's PREFECT_HOME).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
import torch

from tests.conftest import IGNORE, REPO, run, session_pids

FIGURES: dict[str, str] = {}
LIVE_PREFECT = ("RUNNING", "PENDING", "SCHEDULED", "CANCELLING")


def teardown_module() -> None:
    if target := os.environ.get("LIVERSYNTH_FAULT_FIGURES"):
        with open(target, "a") as out:
            out.writelines(f"{k}: {v}\n" for k, v in FIGURES.items())


def _wait(cond: Callable[[], bool], proc: subprocess.Popen, what: str, timeout_s: float = 600) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"dvc repro ended ({proc.returncode}) before {what}")
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _kill_repro_when(repo: Path, env: dict[str, str], cond: Callable[[Path], bool], what: str) -> dict:
    """Start the pipeline as `make run` does, kill -9 its whole process group once `cond(log)` holds."""
    log = repo / f"repro-{what}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["scripts/with_prefect_api.sh", "dvc", "repro"], cwd=repo, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    _wait(lambda: cond(log), proc, what)
    guard = int((repo / ".prefect" / "server.pid").read_text())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic()
    while session_pids(guard) and time.monotonic() - killed_at < 10:
        time.sleep(0.1)
    return {"left": session_pids(guard), "gone_after_s": time.monotonic() - killed_at}


def _checkpoint_steps(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): int(torch.load(p, weights_only=True)["step"]) for p in folder.rglob("*.pt")}


def _final_run_with_a_second_repro(repo: Path, env: dict[str, str]) -> tuple[str, dict]:
    """The rerun to the end; once it runs a stage, a second `dvc repro` must fail on DVC's lock."""
    log = repo / "repro-final.log"
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(["scripts/with_prefect_api.sh", "dvc", "repro"], cwd=repo, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    _wait(lambda: "Running stage" in log.read_text(), proc, "the final rerun to start a stage")
    guard = int((repo / ".prefect" / "server.pid").read_text())
    second_start = time.monotonic()
    second = run(["dvc", "repro"], repo, {**env, "PREFECT_API_URL": "http://127.0.0.1:9/api"}, check=False)
    concurrent = {"rc": second.returncode, "out": second.stdout + second.stderr,
                  "seconds": time.monotonic() - second_start}
    assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    end = time.monotonic() + 10
    while session_pids(guard) and time.monotonic() < end:
        time.sleep(0.1)
    concurrent["server_left_after_success"] = session_pids(guard)
    FIGURES["final rerun"] = f"{time.monotonic() - start:.0f} s"
    return log.read_text(), concurrent


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory: pytest.TempPathFactory):
    repo = tmp_path_factory.mktemp("faults") / "repo"
    shutil.copytree(REPO, repo, ignore=IGNORE)
    shutil.copy(REPO / "tests" / "tiny_params.yaml", repo / "params.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(repo / ".prefect"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "TQDM_DISABLE": "1"}
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(name, None)  # the helper server of with_prefect_api.sh, the copy's own MLflow store
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"],
                [sys.executable, "-m", "flows.generate_data"], ["scripts/track_raw_data.sh"]):
        run(cmd, repo, env)
    ckpt = repo / ".checkpoints"
    kills, steps = {}, {}
    kills["tune_mix"] = _kill_repro_when(repo, env, lambda _: any((ckpt / "tune").rglob("*.pt")), "tune_mix")
    steps["tune_mix"] = _checkpoint_steps(ckpt / "tune")
    kills["train_unet"] = _kill_repro_when(repo, env, lambda _: any((ckpt / "unet").glob("*.pt")), "train_unet")
    steps["train_unet"] = _checkpoint_steps(ckpt / "unet")
    final, concurrent = _final_run_with_a_second_repro(repo, env)
    return repo, env, kills, steps, final, concurrent


def test_no_helper_server_survives_a_kill(killed_and_resumed):
    _, _, kills, *_ = killed_and_resumed
    for stage, kill in kills.items():
        assert kill["left"] == [], f"helper Prefect server left after kill -9 during {stage}: {kill['left']}"
        FIGURES[f"kill -9 during {stage}: helper server gone after"] = f"{kill['gone_after_s']:.1f} s"
    assert killed_and_resumed[-1]["server_left_after_success"] == []


def test_rerun_completes_and_dvc_status_is_clean(killed_and_resumed):
    repo, env, _, _, final, _ = killed_and_resumed
    assert "Running stage 'evaluate'" in final and "Running stage 'register'" in final
    assert "up to date" in run(["dvc", "status"], repo, env).stdout
    assert not (repo / ".checkpoints").exists() or not any((repo / ".checkpoints").rglob("*.pt"))


def _runs(repo: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlruns/mlflow.db'}")
    exp = client.get_experiment_by_name("liversynth")
    return client.search_runs([exp.experiment_id], max_results=1000)


def _unet_run_name(checkpoint: str) -> str:
    """`real_only-seed0.pt` -> `unet[real_only seed=0]`, the run name train_unet gives that arm/seed."""
    arm, _, seed = checkpoint.removesuffix(".pt").rpartition("-seed")
    return f"unet[{arm} seed={seed}]"


def test_training_resumed_from_its_checkpoint(killed_and_resumed):
    repo, _, _, steps, *_ = killed_and_resumed
    runs = _runs(repo)
    assert steps["tune_mix"] and steps["train_unet"], steps
    final_step = yaml.safe_load((repo / "params.yaml").read_text())["unet"]["steps"]
    redone, checked = 0, 0
    for stage, at_kill in steps.items():
        for name, step in at_kill.items():
            ratio = name.rsplit("ratio-", 1)[-1].removesuffix(".pt")
            resumed = [int(r.data.tags["resumed_from_step"]) for r in runs
                       if r.data.tags.get("stage") == stage and "resumed_from_step" in r.data.tags
                       and (r.info.run_name == _unet_run_name(name) if stage == "train_unet"
                            else r.info.run_name.endswith(f"-ratio-{ratio}"))]
            if not resumed and step >= final_step:
                continue  # that training had finished before the kill landed: nothing to resume or redo
            assert resumed, f"{stage}: no resumed run for checkpoint {name} at step {step}"
            checked += 1
            redone += step - max(resumed)
            FIGURES[f"kill -9 during {stage}: {name} checkpoint step -> resumed_from_step"] = \
                f"{step} -> {max(resumed)}"
    assert redone == 0 and checked >= 1
    FIGURES["checkpointed steps redone after resume"] = str(redone)


def test_no_run_left_running(killed_and_resumed):
    repo, *_ = killed_and_resumed
    running = [r.info.run_name for r in _runs(repo) if r.info.status == "RUNNING"]
    interrupted = [r for r in _runs(repo) if r.data.tags.get("interrupted") == "true"]
    assert running == [] and interrupted
    with sqlite3.connect(repo / ".prefect" / "prefect.db") as db:
        states = db.execute("SELECT name, state_type FROM flow_run").fetchall()
    live = [s for s in states if s[1] in LIVE_PREFECT]
    crashed = [s for s in states if s[1] == "CRASHED"]
    assert live == [] and len(crashed) >= 2, states  # one per kill at least (the stage's flow run)
    FIGURES["MLflow runs left RUNNING / marked FAILED (interrupted)"] = f"{len(running)} / {len(interrupted)}"
    FIGURES["Prefect flow runs left RUNNING / marked CRASHED"] = f"{len(live)} / {len(crashed)}"


def test_two_repros_at_once_second_fails_fast_on_dvc_lock(killed_and_resumed):
    """The second `dvc repro`, started while the first runs a stage, fails on DVC's lock within seconds;
    the first completes and leaves everything up to date (see test_rerun_completes...)."""
    *_, concurrent = killed_and_resumed
    assert concurrent["rc"] != 0
    assert re.search(r"Unable to acquire lock|is busy, it is being blocked by", concurrent["out"]), concurrent["out"]
    assert concurrent["seconds"] < 30
    FIGURES["second concurrent dvc repro: lock error after"] = f"{concurrent['seconds']:.1f} s"

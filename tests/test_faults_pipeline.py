"""Fault matrix, pipeline: a kill ladder. One tiny pipeline (a temporary git copy, real DVC, MLflow sqlite,
Prefect) is started as `make run` starts it, `scripts/with_prefect_api.sh dvc repro`, and its whole process
group is killed with SIGKILL during train_essnet, synthesize, tuning, train_unet, evaluate and register in
turn, each rerun going one stage further; then a rerun completes (while a second `dvc repro` is refused on
DVC's lock). Training must resume from its checkpoint, nothing may be left RUNNING, nothing half-registered,
no process behind, and `dvc status` clean.

The first kill takes down the helper Prefect server that with_prefect_api.sh started for that repro. The
later repros share one helper server (the copy's Prefect database, as `make prefect-ui` would serve it):
there the next start of the killed stage itself marks its flow run CRASHED (liversynth.utils.prefect_runs).
That server's own `with_prefect_api.sh` process group is killed with SIGKILL at the end, and must vanish.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import IGNORE, REPO, run
from tests.kill_ladder import (checkpoint_steps, debris, model_version_count, owned_mlflow_run_open,
                               owned_by, prefect_db_runs, stage_process, steps_redone)

FIGURES: dict[str, str] = {}
LIVE_PREFECT = ("RUNNING", "PENDING", "SCHEDULED", "CANCELLING")
# (stage, Prefect server, what must have happened before the kill): "own" is the helper server that
# with_prefect_api.sh starts for that repro, "shared" the one started once for all later repros.
LADDER = (("train_essnet", "own", "checkpoint"), ("synthesize", "shared", "mlflow run"),
          ("tuning", "shared", "checkpoint"), ("train_unet", "shared", "checkpoint"),
          ("evaluate", "shared", "mlflow run"), ("register", "shared", "model version"))
TOTAL_STEPS = {"train_essnet": "essnet", "tuning": "unet", "train_unet": "unet"}  # params section with `steps`


def teardown_module() -> None:
    if target := os.environ.get("LIVERSYNTH_FAULT_FIGURES"):
        with open(target, "a") as out:
            out.writelines(f"{k}: {v}\n" for k, v in FIGURES.items())


def _start(repo: Path, env: dict[str, str], name: str, *command: str) -> tuple[subprocess.Popen, Path]:
    """`scripts/with_prefect_api.sh <command>` (default `dvc repro`) as its own process group, logged."""
    log = repo / f"repro-{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["scripts/with_prefect_api.sh", *(command or ("dvc", "repro"))], cwd=repo, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def _kill_group(repo: Path, proc: subprocess.Popen, spare: frozenset[int]) -> tuple[list[str], float]:
    """SIGKILL the whole process group; (what still works in the copy 10 s later at most, seconds until gone).
    `spare`: the sessions of the shared helper server, which must outlive the repros."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    while debris(repo, spare) and time.monotonic() - killed < 10:
        time.sleep(0.1)
    return debris(repo, spare), time.monotonic() - killed


def _ready(repo: Path, how: str, pid: int, seen_at: float, versions_before: int) -> bool:
    db = repo / "mlruns" / "mlflow.db"
    if how == "checkpoint":
        return bool(checkpoint_steps(repo / ".checkpoints", seen_at))
    if how == "mlflow run":
        return owned_mlflow_run_open(db, pid)
    return owned_mlflow_run_open(db, pid) and model_version_count(db) > versions_before


def _kill_during(repo: Path, env: dict[str, str], stage: str, how: str, spare: frozenset[int]) -> dict:
    """Start the pipeline; once `stage` runs and `how` holds, SIGKILL its process group."""
    versions = model_version_count(repo / "mlruns" / "mlflow.db")
    start = time.monotonic()
    proc, log = _start(repo, env, stage)
    pid, seen_at, restart_s = None, 0.0, 0.0
    while True:
        current = stage_process(proc.pid, stage)
        if current is not None and current != pid:  # first seen (or the next variant's process)
            pid, seen_at, restart_s = current, time.time() - 1, time.monotonic() - start
        if pid is not None and _ready(repo, how, pid, seen_at, versions):
            break
        if proc.poll() is not None or time.monotonic() - start > 1800:  # a loaded CI box, as conftest.run
            _kill_group(repo, proc, spare)
            pytest.fail(f"no kill during {stage} ({how}): dvc repro ended ({proc.poll()})\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    ran_s = time.monotonic() - start - restart_s
    left, gone_after_s = _kill_group(repo, proc, spare)
    return {"pid": pid, "restart_s": restart_s, "ran_s": ran_s, "left": left, "gone_after_s": gone_after_s,
            "versions": model_version_count(repo / "mlruns" / "mlflow.db"),
            "steps": checkpoint_steps(repo / ".checkpoints", seen_at) if how == "checkpoint" else {}}


def _final_run_with_a_second_repro(repo: Path, env: dict[str, str]) -> dict:
    """The rerun to the end; once it runs a stage, a second `dvc repro` must fail on DVC's lock."""
    start = time.monotonic()
    proc, log = _start(repo, env, "final")
    try:
        while "Running stage" not in log.read_text():
            assert proc.poll() is None and time.monotonic() - start < 1800, log.read_text()[-4000:]
            time.sleep(0.1)
        second_start = time.monotonic()
        second = run(["dvc", "repro"], repo, {**env, "PREFECT_API_URL": "http://127.0.0.1:9/api"}, check=False)
        out = {"rc": second.returncode, "out": second.stdout + second.stderr,
               "seconds": time.monotonic() - second_start}
        assert proc.wait(timeout=1800) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:  # failed or timed out: leave no pipeline behind
            _kill_group(repo, proc, frozenset())
    out["final_s"], out["log"] = time.monotonic() - start, log.read_text()
    return out


def _shared_server(repo: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, frozenset[int]]:
    """A helper Prefect server on the copy's database, held by `with_prefect_api.sh sh` (its own group):
    (that process, the API URL, its sessions: the supervisor's and its server guard's)."""
    url_file = repo / ".prefect" / "url"
    hold = f'echo "$PREFECT_API_URL" > {url_file} && exec sleep 3600'
    proc, log = _start(repo, env, "shared-server", "sh", "-c", hold)
    while not url_file.exists() or not url_file.read_text().strip():
        if proc.poll() is not None:
            pytest.fail(f"the shared helper server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    guard = int((repo / ".prefect" / "server.pid").read_text())  # written before the server is asked for health
    return proc, url_file.read_text().strip(), frozenset({proc.pid, guard})


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory):
    repo = tmp_path_factory.mktemp("faults") / "repo"
    shutil.copytree(REPO, repo, ignore=IGNORE)
    shutil.copy(REPO / "tests" / "tiny_params.yaml", repo / "params.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_HOME": str(repo / ".prefect"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "TQDM_DISABLE": "1"}
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(name, None)  # the helper server of with_prefect_api.sh, the copy's own MLflow store
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"],
                [sys.executable, "-m", "scripts.generate_data"], ["scripts/track_raw_data.sh"]):
        run(cmd, repo, env)
    kills: dict[str, dict] = {}
    server, shared, spare = None, env, frozenset[int]()
    try:
        for stage, prefect, how in LADDER:
            if prefect == "shared" and server is None:
                server, url, spare = _shared_server(repo, env)
                shared = {**env, "PREFECT_API_URL": url}
            kills[stage] = {"server": prefect, "how": how, **_kill_during(repo, shared, stage, how, spare)}
        final = _final_run_with_a_second_repro(repo, shared)
        final["flow_runs"] = prefect_db_runs(repo / ".prefect" / "prefect.db")
    finally:
        if server is not None:
            left, gone_after_s = _kill_group(repo, server, frozenset())
    final.update(server_left=left, server_gone_after_s=gone_after_s, status=run(["dvc", "status", "dvc.yaml"], repo, env).stdout,
                 server_log=(repo / "repro-shared-server.log").read_text())
    return repo, kills, final


def test_no_process_survives_a_kill(ladder):
    _, kills, final = ladder
    for stage, kill in kills.items():
        assert kill["left"] == [], f"left after kill -9 during {stage}: {kill['left']}"
        FIGURES[f"kill -9 during {stage}: processes gone after"] = f"{kill['gone_after_s']:.1f} s"
    assert final["server_left"] == [], final["server_left"]  # the shared helper server, killed with its group
    FIGURES["kill -9 of the shared helper server's group: gone after"] = f"{final['server_gone_after_s']:.1f} s"


def test_every_rerun_completes_and_dvc_status_is_clean(ladder):
    repo, kills, final = ladder
    assert "Running stage 'register'" in final["log"]  # killed last: it runs again, to the end
    assert "up to date" in final["status"], final["status"]
    assert not list((repo / ".checkpoints").rglob("*.pt"))  # every training finished and cleaned up
    for stage, kill in kills.items():
        FIGURES[f"kill -9 during {stage}: rerun reached the stage after / ran before the kill"] = \
            f"{kill['restart_s']:.0f} s / {kill['ran_s']:.1f} s"
    FIGURES["final rerun"] = f"{final['final_s']:.0f} s"


def _runs(repo: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlruns/mlflow.db'}")
    exp = client.get_experiment_by_name("liversynth")
    return client, client.search_runs([exp.experiment_id], max_results=5000)


def test_training_resumed_from_its_checkpoint(ladder):
    repo, kills, _ = ladder
    _, runs = _runs(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    total_redone = 0
    for stage, section in TOTAL_STEPS.items():
        at_kill = kills[stage]["steps"]
        assert at_kill, f"{stage}: no checkpoint when killed"
        unfinished = [s for s in at_kill.values() if s < params[section]["steps"]]  # done ones need no resume
        resumed = [int(r.data.tags["resumed_from_step"]) for r in runs
                   if r.data.tags.get("stage") == stage and "resumed_from_step" in r.data.tags]
        redone = steps_redone(unfinished, resumed)
        assert redone == 0 and (resumed or not unfinished), (stage, at_kill, resumed)
        total_redone += redone
        FIGURES[f"kill -9 during {stage}: checkpoint steps at kill -> resumed_from_step, steps redone"] = \
            f"{sorted(at_kill.values())} -> {sorted(resumed)}, {redone}"
    FIGURES["checkpointed steps redone after resume"] = str(total_redone)


def test_nothing_left_running(ladder):
    repo, kills, final = ladder
    _, runs = _runs(repo)
    running = [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    interrupted = [r for r in runs if r.data.tags.get("interrupted") == "true"]
    assert running == [] and interrupted  # killed runs not reopened by a resume are marked FAILED
    live = [r for r in final["flow_runs"] if r[1] in LIVE_PREFECT]
    assert live == [], final["flow_runs"]
    assert "marked 1 interrupted flow run(s) CRASHED" in final["server_log"]  # the own server's killed run
    for stage, kill in kills.items():
        states = [r[1] for r in final["flow_runs"] if owned_by(r[2], kill["pid"])]
        assert states == ["CRASHED"], (stage, states)
        mlflow_open = [r for r in runs if r.info.status == "RUNNING" and r.data.tags.get("stage") == stage]
        FIGURES[f"kill -9 during {stage}: MLflow runs / Prefect flow runs left RUNNING"] = \
            f"{len(mlflow_open)} / 0 (its flow run CRASHED)"
    FIGURES["MLflow runs left RUNNING / marked FAILED (interrupted)"] = f"{len(running)} / {len(interrupted)}"
    FIGURES["Prefect flow runs left RUNNING / marked CRASHED"] = \
        f"{len(live)} / {sum(r[1] == 'CRASHED' for r in final['flow_runs'])}"


def test_no_half_made_registered_unit(ladder):
    from liversynth.tracking.registry import CHALLENGER, COMPLETE_TAG, UNIT_TAG, alias_version

    repo, kills, _ = ladder
    client, _ = _runs(repo)
    names = yaml.safe_load((repo / "params.yaml").read_text())["register"]
    assert kills["register"]["versions"] >= 1  # the kill landed with a unit half made
    units = {}
    for name in (names["unet_name"], names["generator_name"]):
        versions = client.search_model_versions(f"name = '{name}'")
        assert len(versions) == 1, [(v.version, v.tags) for v in versions]  # completed, not duplicated
        tags = versions[0].tags
        assert tags.get(COMPLETE_TAG) == "true" and "gate.promote" in tags and "liversynth.unit_versions" in tags
        assert alias_version(client, name, CHALLENGER) == versions[0].version
        units[name] = tags[UNIT_TAG]
    assert len(set(units.values())) == 1
    FIGURES["kill -9 during register: model versions at kill -> after the rerun"] = \
        f"{kills['register']['versions']} -> {len(units)}, all complete, one unit"


def test_two_repros_at_once_second_fails_fast_on_dvc_lock(ladder):
    """The second `dvc repro`, started while the first runs a stage, fails on DVC's lock within seconds."""
    *_, final = ladder
    assert final["rc"] != 0
    assert re.search(r"Unable to acquire lock|is busy, it is being blocked by", final["out"]), final["out"]
    assert final["seconds"] < 30
    FIGURES["second concurrent dvc repro: lock error after"] = f"{final['seconds']:.1f} s"

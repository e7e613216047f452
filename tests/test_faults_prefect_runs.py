"""Fault matrix, Prefect on a shared server: a stage flow run left RUNNING by a SIGKILLed process is marked
CRASHED by the next start of that stage (liversynth.utils.prefect_runs), while runs of live processes,
of other hosts and of other flows stay as they are; and a stage failing for a known reason (bad data)
ends its short stderr with the one-line reason (liversynth.utils.stage_errors)."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from liversynth.utils.connectivity import ServiceUnavailable
from liversynth.utils.prefect_runs import OWNER_TAG_PREFIX, owner_of
from liversynth.utils.stage_errors import TRACEBACK_ENV, short_reason
from tests.conftest import REPO

FIGURES: dict[str, str] = {}

HELD_FLOW = """
import time
from prefect import flow
from flows.common import load_params

@flow(name="validate")
def validate_flow() -> None:
    load_params()
    print("started", flush=True)
    time.sleep(600)

validate_flow()
"""


def teardown_module() -> None:
    if target := os.environ.get("LIVERSYNTH_FAULT_FIGURES"):
        with open(target, "a") as out:
            out.writelines(f"{k}: {v}\n" for k, v in FIGURES.items())


def _env(tmp_path: Path, prefect_api: str) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**full, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}", "PREFECT_API_URL": prefect_api,
            "LIVERSYNTH_PARAMS": str(REPO / "tests" / "tiny_params.yaml"), "PREFECT_HOME": str(tmp_path / ".prefect"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


async def _runs(tags: list[str] | None = None, ids: list[uuid.UUID] | None = None) -> dict[uuid.UUID, tuple]:
    """Flow runs by id -> (flow name, state type, tags)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterTags

    filt = FlowRunFilter(tags=FlowRunFilterTags(all_=tags) if tags else None,
                         id=FlowRunFilterId(any_=ids) if ids else None)
    async with get_client() as client:
        found = await client.read_flow_runs(flow_run_filter=filt)
        names = {f.id: f.name for f in await client.read_flows()}
    return {r.id: (names[r.flow_id], r.state_type.value if r.state_type else None, r.tags) for r in found}


def _noop() -> None:
    """The body of the flows that `_running_run` makes runs of (never called)."""


async def _running_run(flow_name: str, owner: str) -> uuid.UUID:
    """A RUNNING flow run of `flow_name` owned by `owner`, made through the API (as a stage start would)."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    async with get_client() as client:
        run = await client.create_flow_run(flow(name=flow_name)(_noop), tags=[f"{OWNER_TAG_PREFIX}{owner}"])
        await client.set_flow_run_state(run.id, Running(), force=True)
    return run.id


async def _complete(ids: list[uuid.UUID]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Completed

    async with get_client() as client:
        for run_id in ids:
            await client.set_flow_run_state(run_id, Completed(), force=True)


def _killed_stage_run(tmp_path: Path, env: dict[str, str]) -> tuple[int, float]:
    """A `validate` flow run whose process took ownership, then got SIGKILLed: (its pid, seconds to start)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", HELD_FLOW], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the flow has claimed its run (or died)
    if line.strip() != "started":
        proc.kill()
        pytest.fail(f"held flow did not start: {line}\n{proc.communicate(timeout=30)[1][-3000:]}")
    elapsed = time.monotonic() - start
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.pid, elapsed


def test_next_stage_start_crashes_the_killed_flow_run_and_fails_short(tmp_path: Path, prefect_api: str):
    env = _env(tmp_path, prefect_api)
    pid, _ = _killed_stage_run(tmp_path, env)
    host = socket.gethostname()
    killed = asyncio.run(_runs(tags=[f"{OWNER_TAG_PREFIX}{host}:{pid}"]))
    assert [v[:2] for v in killed.values()] == [("validate", "RUNNING")], killed
    others = {"live": asyncio.run(_running_run("validate", f"{host}:{os.getpid()}")),
              "other host": asyncio.run(_running_run("validate", f"not-{host}:{pid}")),
              "other flow": asyncio.run(_running_run("prepare", f"{host}:{pid}"))}
    try:
        start = time.monotonic()
        stage = subprocess.run([sys.executable, "-m", "flows.validate"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)
        elapsed = time.monotonic() - start
        states = asyncio.run(_runs(ids=[*killed, *others.values()]))
    finally:
        asyncio.run(_complete(list(others.values())))
    assert [states[i][1] for i in killed] == ["CRASHED"], (states, stage.stderr[-3000:])
    assert {k: states[i][1] for k, i in others.items()} == dict.fromkeys(others, "RUNNING")
    # The stage itself then fails on its missing data: the reason is the last line of a short stderr.
    lines = [line for line in stage.stderr.splitlines() if line.strip()]
    assert stage.returncode == 1 and len(stage.stderr.splitlines()) < 40, stage.stderr
    assert lines[-1].startswith("liversynth.data.validation.DataValidationError: ") and \
        "split folder missing; rerun the prepare stage" in lines[-1], stage.stderr
    assert "Traceback" not in stage.stderr and "marked CRASHED 1 flow run(s) of validate" in stage.stderr
    FIGURES["shared Prefect server: killed flow run -> CRASHED by the next stage start"] = \
        f"{elapsed:.1f} s (interpreter start included)"
    FIGURES["bad data (validate): stderr lines, last line the reason"] = str(len(stage.stderr.splitlines()))


def test_owner_tags_and_short_reasons(monkeypatch: pytest.MonkeyPatch):
    assert owner_of(["x", f"{OWNER_TAG_PREFIX}h:1"]) == "h:1" and owner_of(["x"]) is None and owner_of(None) is None
    err = ServiceUnavailable("MLflow tracking server http://127.0.0.1:9/ is unreachable")
    assert short_reason(err) == ("liversynth.utils.connectivity.ServiceUnavailable: "
                                 "MLflow tracking server http://127.0.0.1:9/ is unreachable")
    assert short_reason(ValueError("a bug")) is None  # anything else keeps its traceback
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    assert short_reason(err) is None

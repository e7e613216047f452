"""Fault matrix, Prefect on a shared server: a stage flow run whose owner process was SIGKILLed is marked
CRASHED by the next start of that stage (liversynth.utils.prefect_runs), while runs of live processes,
of other hosts and of other flows stay as they are. Real stages killed by `kill -9` mid-run, and their
flow runs crashed by their next start, are in test_faults_pipeline; known failures ending a real stage
with a short stderr whose last line is the reason (liversynth.utils.stage_errors) in test_faults_services."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest
from prefect import flow

from liversynth.config import Params
from liversynth.data.readers import RawDataError
from liversynth.data.validation import DataValidationError
from liversynth.utils.connectivity import ServiceUnavailable
from liversynth.utils.prefect_runs import OWNER_TAG_PREFIX, owner_of, start_stage_flow_run
from liversynth.utils.process import owner_alive, owner_id
from liversynth.utils.stage_errors import TRACEBACK_ENV, short_reason

FIGURES: dict[str, str] = {}


def teardown_module() -> None:
    if target := os.environ.get("LIVERSYNTH_FAULT_FIGURES"):
        with open(target, "a") as out:
            out.writelines(f"{k}: {v}\n" for k, v in FIGURES.items())


async def _runs_of_owner(owner: str) -> list[tuple]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    async with get_client() as client:
        found = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"{OWNER_TAG_PREFIX}{owner}"])))
        names = {f.id: f.name for f in await client.read_flows()}
    return [(names[r.flow_id], r.state_type.value if r.state_type else None) for r in found]


async def _runs(ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple]:
    """Flow runs by id -> (flow name, state type, tags)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        found = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
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


def _dead_pid() -> int:
    """The pid of a process that was SIGKILLed (as a stage under `kill -9`)."""
    proc = subprocess.Popen(["sleep", "60"])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid


@flow(name="validate")
def _validate_start() -> list[str]:
    """What every stage flow does first (flows.common.start_stage): own its run, crash the dead ones."""
    return start_stage_flow_run()


def test_next_stage_start_crashes_the_killed_flow_run_only(prefect_api: str):
    pid, host = _dead_pid(), socket.gethostname()
    killed = asyncio.run(_running_run("validate", f"{host}:{pid}"))  # test_faults_pipeline kills real stages
    others = {"live": asyncio.run(_running_run("validate", f"{host}:{os.getpid()}")),
              "other host": asyncio.run(_running_run("validate", f"not-{host}:{pid}")),
              "other flow": asyncio.run(_running_run("prepare", f"{host}:{pid}"))}
    try:
        start = time.monotonic()
        crashed = _validate_start()
        elapsed = time.monotonic() - start
        states = asyncio.run(_runs([killed, *others.values()]))
    finally:
        asyncio.run(_complete(list(others.values())))
    assert states[killed][1] == "CRASHED" and len(crashed) == 1, states
    assert {k: states[i][1] for k, i in others.items()} == dict.fromkeys(others, "RUNNING")
    mine = [r for r in asyncio.run(_runs_of_owner(owner_id())) if r[0] == "validate"]
    assert ("validate", "COMPLETED") in [r[:2] for r in mine]  # the new stage run was tagged as ours
    FIGURES["shared Prefect server: killed flow run -> CRASHED at the next stage start"] = \
        f"{elapsed:.2f} s (a whole in-process flow run)"


def test_owner_tags_and_short_reasons(tmp_path, monkeypatch: pytest.MonkeyPatch):
    assert owner_of(["x", f"{OWNER_TAG_PREFIX}h:1"]) == "h:1" and owner_of(["x"]) is None and owner_of(None) is None
    err = ServiceUnavailable("MLflow tracking server http://127.0.0.1:9/ is unreachable")
    assert short_reason(err) == ("liversynth.utils.connectivity.ServiceUnavailable: "
                                 "MLflow tracking server http://127.0.0.1:9/ is unreachable")
    (tmp_path / "params.yaml").write_text("essnet: {steps: -5}\n")
    with pytest.raises(ValueError) as bad_params:
        Params.from_yaml(tmp_path / "params.yaml")
    for known in (bad_params.value, DataValidationError("prepared data failed 1 check"), RawDataError("truncated")):
        assert short_reason(known) is not None, known  # bad params, bad data: the reason, no traceback
    assert short_reason(ValueError("a bug")) is None  # anything else keeps its traceback
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    assert short_reason(err) is None


def test_an_owner_is_dead_once_its_pid_names_another_process_or_a_zombie():
    """kill -9 then pid reuse: the tag names the pid and its start time, so a new process that got the
    same pid does not keep the dead owner's runs open; an exited, unreaped child is no owner either."""
    host = socket.gethostname()
    me = owner_id()
    assert me.startswith(f"{host}:{os.getpid()}@") and owner_alive(me)
    assert not owner_alive(f"{host}:{os.getpid()}@1")  # same pid, another start time: pid reused
    assert owner_alive(f"{host}:{os.getpid()}") and owner_alive(f"elsewhere:{os.getpid()}@1")
    child = subprocess.Popen(["sleep", "30"])
    try:
        owner = f"{host}:{child.pid}"
        assert owner_alive(owner)
        child.kill()
        deadline = time.monotonic() + 10
        while owner_alive(owner) and time.monotonic() < deadline:  # a zombie until waited for
            time.sleep(0.05)
        assert not owner_alive(owner)
    finally:
        child.wait()
    assert not owner_alive(f"{host}:{child.pid}")

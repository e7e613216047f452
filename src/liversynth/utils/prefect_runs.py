"""Prefect flow runs left RUNNING by a killed stage process, on any Prefect API (a shared team server too).

A `kill -9` ends a stage's process without telling the Prefect API, so its flow run would stay RUNNING
for ever (the helper server of scripts/prefect_api.py cleans its own database at start, a shared
server has no such moment). So each stage flow, as it starts, tags its own flow run with its owner
(`liversynth.owner=<host>:<pid>@<start>`, the `liversynth.utils.process.owner_id` format) and marks CRASHED
the RUNNING flow runs of the same flow name whose owner is a process of this host that is gone.
Runs of other hosts, of live processes and untagged runs are left alone.
"""
from __future__ import annotations

from typing import Any

from liversynth.utils.process import owner_alive, owner_id

__all__ = ["OWNER_TAG_PREFIX", "crash_dead_flow_runs", "owner_of", "start_stage_flow_run"]

OWNER_TAG_PREFIX = "liversynth.owner="
CRASH_MESSAGE = "interrupted: the process running it ({owner}) is gone"


def owner_of(tags: list[str] | None) -> str | None:
    """The owner (liversynth.utils.process.owner_id) a flow run's tags name, if it has one."""
    return next((t.removeprefix(OWNER_TAG_PREFIX) for t in tags or [] if t.startswith(OWNER_TAG_PREFIX)), None)


def crash_dead_flow_runs(client: Any, flow_name: str, keep: Any = None) -> list[str]:
    """Mark CRASHED the RUNNING runs of `flow_name` whose owner process (on this host) is gone; `keep` is
    the caller's own flow run id. `client` is a sync Prefect client. Returns the names of the runs marked."""
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState,
                                                FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    running = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    found = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                  flow_run_filter=FlowRunFilter(state=running), limit=200)
    crashed = []
    for run in found:
        owner = owner_of(run.tags)
        if run.id == keep or owner is None or owner_alive(owner):
            continue
        client.set_flow_run_state(run.id, Crashed(message=CRASH_MESSAGE.format(owner=owner)), force=True)
        crashed.append(str(run.name))
    return crashed


def start_stage_flow_run() -> list[str]:
    """In a stage's flow run (not in a task, not outside Prefect): tag the run with this process as its
    owner, then crash the dead runs of the same flow. Never fails the stage: a Prefect API error is
    logged as one warning. Returns the names of the runs marked CRASHED."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.logging import get_run_logger

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None or ctx.flow is None or TaskRunContext.get() is not None:
        return []
    run, log = ctx.flow_run, get_run_logger()
    try:
        with get_client(sync_client=True) as client:
            if owner_of(run.tags) is None:  # a process-pool worker must not take over its flow's run
                run.tags = [*run.tags, f"{OWNER_TAG_PREFIX}{owner_id()}"]
                client.update_flow_run(run.id, tags=run.tags)
            crashed = crash_dead_flow_runs(client, ctx.flow.name, keep=run.id)
    except Exception as err:  # noqa: BLE001 - housekeeping: the stage itself can still run
        log.warning("could not check %s's earlier flow runs on the Prefect API: %s", ctx.flow.name, err)
        return []
    if crashed:
        log.warning("marked CRASHED %d flow run(s) of %s left RUNNING by a killed process: %s",
                     len(crashed), ctx.flow.name, ", ".join(crashed))
    return crashed

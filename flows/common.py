"""What every stage flow shares: reading params.yaml (LIVERSYNTH_PARAMS names another file),
applying its `runtime:` section (threads, determinism) before any torch work, the stage's MLflow
run, linked from the Prefect flow run that made it, and the task runner that trains a grid of
independent models (generator seeds, U-Net arms x seeds, tuning trials) in worker processes.

Workers: LIVERSYNTH_WORKERS, else cores // runtime.threads. Each worker trains with exactly
`runtime.threads` threads, so results do not depend on how many workers there are (tested).
LIVERSYNTH_TASK_RUNNER picks the engine: `processes` (default), `dask` (a local Dask cluster, or the
one at LIVERSYNTH_DASK_ADDRESS, whose workers may sit on many machines) or `threads`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from prefect import Flow, task
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from liversynth.config import Params
from liversynth.runtime.settings import apply_runtime
from liversynth.tracking import runs
from liversynth.training.grid import Cell, MapFn, run_cell
from liversynth.training.loop import progress_logger
from liversynth.utils.prefect_runs import start_stage_flow_run
from liversynth.utils.stage_errors import install_short_failures

__all__ = ["PARAMS_PATH", "grid_map", "link_run", "load_params", "progress_to_prefect", "start_stage", "task_runner",
           "with_workers", "worker_count"]

PARAMS_PATH = Path(os.environ.get("LIVERSYNTH_PARAMS", "params.yaml"))


def load_params() -> Params:
    """params.yaml (or LIVERSYNTH_PARAMS), validated; nothing else happens."""
    return Params.from_yaml(PARAMS_PATH)


def start_stage() -> Params:
    """What a stage flow (or a worker's task) does first: known failures (bad data, params, service)
    end with their one-line reason, the Prefect flow run is owned and the dead ones crashed, and
    params.yaml's `runtime:` (threads, determinism) is applied before any torch work."""
    install_short_failures()
    start_stage_flow_run()
    progress_to_prefect()
    params = load_params()
    apply_runtime(params.runtime)
    return params


class _InPrefectRun(logging.Filter):
    """Only records made inside a Prefect flow or task run (Prefect's API handler needs one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext, TaskRunContext

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def progress_to_prefect() -> None:
    """The training loops' progress lines (liversynth.training.loop) also go to the logs of the Prefect
    flow or task run that trains, so the Prefect UI shows them; the console keeps its plain lines."""
    from prefect.logging.handlers import APILogHandler

    logger = progress_logger()
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):
        handler = APILogHandler()
        handler.addFilter(_InPrefectRun())
        logger.addHandler(handler)


def link_run(run: Run) -> None:
    """A Prefect link artifact to the MLflow run, when called inside a Prefect flow run (pass it as
    liversynth.tracking.runs.stage_run's `on_open`)."""
    from prefect.artifacts import create_link_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    label = run.info.run_name or run.info.run_id
    key = re.sub(r"[^a-z0-9-]+", "-", f"mlflow-{label}".lower()).strip("-")
    text = label.replace("[", " (").replace("]", ")")  # brackets would end the markdown link text
    create_link_artifact(link=runs.run_url(run), link_text=f"MLflow run {text}", key=key,
                         description=f"The MLflow run of {label} (run id {run.info.run_id})")


def worker_count(params: Params) -> int:
    """Training processes at once: LIVERSYNTH_WORKERS, else the cores that runtime.threads leaves."""
    if "LIVERSYNTH_WORKERS" in os.environ:
        return max(1, int(os.environ["LIVERSYNTH_WORKERS"]))
    return max(1, (os.cpu_count() or 1) // params.runtime.threads)


def task_runner(workers: int) -> TaskRunner:
    """The engine that runs `workers` tasks at once (see the module docstring)."""
    kind = os.environ.get("LIVERSYNTH_TASK_RUNNER", "processes")
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address := os.environ.get("LIVERSYNTH_DASK_ADDRESS"):
            return DaskTaskRunner(address=address)
        logging.getLogger("distributed").setLevel(logging.WARNING)
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        # Single-threaded worker processes: training holds the GIL often enough that threads serialise.
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None, "silence_logs": logging.WARNING})
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    raise ValueError(f"LIVERSYNTH_TASK_RUNNER={kind!r}: expected processes, dask or threads")


def with_workers(stage_flow: Flow, params: Params) -> Flow:
    """The stage flow on the task runner of `worker_count` workers (as is, for one worker)."""
    n = worker_count(params)
    runner: Any = task_runner(n)  # Prefect's annotation wants PrefectFuture; every runner here returns one
    return stage_flow.with_options(task_runner=runner) if n > 1 else stage_flow


@task(name="train-cell", task_run_name="{cell.key}")
def _grid_cell(cell: Cell) -> tuple[str, Any]:
    start_stage()  # a fresh worker process: threads and determinism before any torch work
    return run_cell(cell)


def _task_map(fn: Callable[[Cell], Any], cells: Sequence[Cell]) -> list[Any]:
    futures = [_grid_cell.submit(c) for c in cells]
    return [f.result() for f in futures]


def grid_map(params: Params) -> MapFn:
    """The `map` for liversynth.training.grid.run_grid inside a stage flow: the flow's task runner when
    there are several workers (each cell a Prefect task run), the builtin in this process otherwise."""
    return _task_map if worker_count(params) > 1 else map

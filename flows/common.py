"""What every stage flow shares: reading params.yaml (LIVERSYNTH_PARAMS names another file),
applying its `runtime:` section (threads, determinism) before any torch work, and the stage's
MLflow run, linked from the Prefect flow run that made it."""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow.entities import Run

from liversynth.config import Params
from liversynth.runtime.settings import apply_runtime
from liversynth.tracking import runs
from liversynth.utils.prefect_runs import start_stage_flow_run
from liversynth.utils.stage_errors import install_short_failures

__all__ = ["PARAMS_PATH", "link_run", "load_params", "stage_run"]

PARAMS_PATH = Path(os.environ.get("LIVERSYNTH_PARAMS", "params.yaml"))


def load_params() -> Params:
    install_short_failures()  # a known failure (bad data, params, service) ends with its one-line reason
    start_stage_flow_run()  # own this flow run; crash the ones killed processes left RUNNING
    params = Params.from_yaml(PARAMS_PATH)
    apply_runtime(params.runtime)
    return params


def link_run(run: Run, label: str) -> None:
    """A Prefect link artifact to the MLflow run, when called inside a Prefect flow run."""
    from prefect.artifacts import create_link_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    key = re.sub(r"[^a-z0-9-]+", "-", f"mlflow-{label}".lower()).strip("-")
    text = label.replace("[", " (").replace("]", ")")  # brackets would end the markdown link text
    create_link_artifact(link=runs.run_url(run), link_text=f"MLflow run {text}", key=key,
                         description=f"The MLflow run of {label} (run id {run.info.run_id})")


@contextlib.contextmanager
def stage_run(params: Params, stage: str, sections: tuple[str, ...] = (), resume_run_id: str | None = None,
              **kwargs: Any) -> Iterator[Run]:
    """`liversynth.tracking.runs.stage_run`, plus the Prefect link artifact to the run."""
    with runs.stage_run(params, stage, sections, resume_run_id, **kwargs) as run:
        link_run(run, run.info.run_name or stage)
        yield run

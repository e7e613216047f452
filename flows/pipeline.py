"""The whole pipeline as one Prefect flow, for scheduled runs.

It runs `dvc repro` on dvc.yaml, the one DAG, rather than restating the stage order here; DVC then
runs only the stages whose inputs changed, each as its own flow. Its output goes to the Prefect
logger line by line, so a served deployment's progress shows in the Prefect UI as it happens; one
LIVERSYNTH_PIPELINE_ID per run groups the stages' MLflow runs under one pipeline run.

    python -m flows.pipeline                        # run once
    python -m flows.pipeline --serve --cron "0 2 * * *"   # a scheduled deployment (nightly)
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import time
import uuid
from collections import deque

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from liversynth.tracking.runs import PIPELINE_ID_ENV, PIPELINE_START_ENV


@flow(name="liversynth-pipeline")
def pipeline_flow(force: bool = False, experiment_params: list[str] | None = None) -> None:
    """`dvc repro` (or `dvc exp run -S ...` when parameters are given)."""
    cmd = ["dvc", "exp", "run"] if experiment_params else ["dvc", "repro"]
    for assignment in experiment_params or []:
        cmd += ["-S", assignment]
    if force:
        cmd.append("--force")
    logger = get_run_logger()
    base = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
    base.setLevel(logging.INFO)  # stage progress is the point here, whatever PREFECT_LOGGING_LEVEL says
    # One pipeline id per run (a served deployment runs many); unbuffered children stream as they go.
    env = {**os.environ, PIPELINE_ID_ENV: f"prefect-{flow_run.get_id() or uuid.uuid4().hex}",
           PIPELINE_START_ENV: repr(time.time()), "PYTHONUNBUFFERED": "1"}
    logger.info("running %s (pipeline id %s)", " ".join(cmd), env[PIPELINE_ID_ENV])
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                          env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                logger.info(line)
                tail.append(line)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n" + "\n".join(tail))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help="serve a scheduled deployment")
    parser.add_argument("--cron", default="0 2 * * *", help="schedule for --serve (default nightly 02:00)")
    parser.add_argument("--force", action="store_true", help="rerun every stage")
    parser.add_argument("-S", dest="set_params", action="append", default=[],
                        help="param override, as for `dvc exp run -S`")
    args = parser.parse_args()
    if args.serve:
        pipeline_flow.serve(name="liversynth-nightly", cron=args.cron,
                            parameters={"force": args.force, "experiment_params": args.set_params})
    else:
        pipeline_flow(force=args.force, experiment_params=args.set_params)


if __name__ == "__main__":
    main()

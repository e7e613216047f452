"""The whole pipeline as one Prefect flow, for scheduled runs.

It runs `dvc repro` on dvc.yaml, the one DAG, rather than restating the stage order here; DVC then
runs only the stages whose inputs changed, each as its own flow.

    python -m flows.pipeline                        # run once
    python -m flows.pipeline --serve --cron "0 2 * * *"   # a scheduled deployment (nightly)
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from prefect import flow, get_run_logger


@flow(name="liversynth-pipeline")
def pipeline_flow(force: bool = False, experiment_params: list[str] | None = None) -> None:
    """`dvc repro` (or `dvc exp run -S ...` when parameters are given)."""
    cmd = ["dvc", "exp", "run"] if experiment_params else ["dvc", "repro"]
    for assignment in experiment_params or []:
        cmd += ["-S", assignment]
    if force:
        cmd.append("--force")
    get_run_logger().info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, text=True, capture_output=True)
    sys.stdout.write(proc.stdout[-20000:])
    sys.stderr.write(proc.stderr[-20000:])
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stderr[-4000:]}")


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

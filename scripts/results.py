"""`make results`: rewrite README.md's generated blocks from the committed artifacts.

    python -m scripts.results           # rewrite
    python -m scripts.results --check   # exit 1 if README.md differs from what would be written
    python -m scripts.results --record-run START   # `make run`: note its wall time, if it made metrics.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from liversynth import paths
from liversynth.evaluation.readme_results import (block_names, render_ceiling, render_reproducibility, render_results,
                                                  render_study, replace_block)
from liversynth.runtime.machine import machine_record
from liversynth.utils.files import write_json

README = Path("README.md")


def _machine() -> dict[str, str]:
    """The machine record as the stages made it: with params.yaml's runtime (threads, determinism) applied."""
    from flows.common import load_params
    from liversynth.runtime.settings import apply_runtime

    apply_runtime(load_params().runtime)
    return machine_record()


def _durations(start: float, end: float) -> dict | None:
    """The pipeline run ends now; how long its runs lasted against their work (liversynth.tracking.durations).
    None without $LIVERSYNTH_PIPELINE_ID (`make run` and `make study` set it)."""
    pid = os.environ.get("LIVERSYNTH_PIPELINE_ID")
    if not pid:
        return None
    from flows.common import load_params
    from liversynth.tracking.durations import run_durations
    from liversynth.tracking.runs import end_pipeline_run, pipeline_run, setup_mlflow

    params = load_params()
    experiment_id = setup_mlflow(params)
    end_pipeline_run(pipeline_run(params, experiment_id))
    return run_durations(experiment_id, pid, start, end)


def generated_readme(text: str) -> str:
    run = json.loads(paths.MAKE_RUN.read_text()) if paths.MAKE_RUN.exists() else None
    out = replace_block(text, "results", render_results(json.loads(paths.METRICS.read_text()),
                                                        json.loads(paths.TUNE_RESULT.read_text()), run))
    if "ceiling" in block_names(out):
        out = replace_block(out, "ceiling", render_ceiling(json.loads(paths.METRICS.read_text())))
    if "study" in block_names(out) and paths.STUDY_METRICS.exists():
        wall = json.loads(paths.STUDY_RUN.read_text()) if paths.STUDY_RUN.exists() else None
        out = replace_block(out, "study", render_study(json.loads(paths.STUDY_METRICS.read_text()), wall))
    reproducibility = Path("reports/reproducibility.json")
    if "reproducibility" in block_names(out) and reproducibility.exists():
        out = replace_block(out, "reproducibility", render_reproducibility(json.loads(reproducibility.read_text())))
    summary = Path("benchmarks/results/summary.md")
    if "benchmarks" in block_names(out) and summary.exists():
        out = replace_block(out, "benchmarks", summary.read_text())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--record-run", type=float, metavar="START", help="epoch seconds `make run` started")
    parser.add_argument("--record-study", type=float, metavar="START", help="epoch seconds `make study` started")
    args = parser.parse_args()
    for start, made, record, durations_path in (
            (args.record_run, paths.METRICS, paths.MAKE_RUN, paths.RUN_DURATIONS),
            (args.record_study, paths.STUDY_METRICS, paths.STUDY_RUN, paths.STUDY_RUN_DURATIONS)):
        if start is None:
            continue
        # Only a run that produced the results counts: a no-op `dvc repro` leaves the record alone.
        if made.exists() and made.stat().st_mtime >= start:
            end = time.time()
            durations = _durations(start, end)
            if durations is not None:
                write_json(durations_path, durations)
            write_json(record, {"wall_s": round(end - start, 1), "machine": _machine(),
                                **({"durations": {"pipeline": durations.get("pipeline"),
                                                  "trainings": durations["trainings"]}} if durations else {})})
        return 0
    text = README.read_text()
    new = generated_readme(text)
    if args.check:
        if new != text:
            print("README.md: generated blocks are out of date; run `make results`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make results`: rewrite README.md's generated blocks from the committed artifacts.

    python -m flows.results           # rewrite
    python -m flows.results --check   # exit 1 if README.md differs from what would be written
    python -m flows.results --record-run START   # `make run`: note its wall time, if it made metrics.json
"""
from __future__ import annotations

import argparse
import json
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

    load_params()
    return machine_record()


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
    for start, made, record in ((args.record_run, paths.METRICS, paths.MAKE_RUN),
                                (args.record_study, paths.STUDY_METRICS, paths.STUDY_RUN)):
        if start is None:
            continue
        # Only a run that produced the results counts: a no-op `dvc repro` leaves the record alone.
        if made.exists() and made.stat().st_mtime >= start:
            write_json(record, {"wall_s": round(time.time() - start, 1), "machine": _machine()})
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

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
from liversynth.evaluation.readme_results import block_names, render_results, replace_block
from liversynth.runtime.machine import machine_record
from liversynth.utils.files import write_json

README = Path("README.md")


def generated_readme(text: str) -> str:
    run = json.loads(paths.MAKE_RUN.read_text()) if paths.MAKE_RUN.exists() else None
    out = replace_block(text, "results", render_results(json.loads(paths.METRICS.read_text()),
                                                        json.loads(paths.TUNE_RESULT.read_text()), run))
    summary = Path("benchmarks/results/summary.md")
    if "benchmarks" in block_names(out) and summary.exists():
        out = replace_block(out, "benchmarks", summary.read_text())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--record-run", type=float, metavar="START", help="epoch seconds `make run` started")
    args = parser.parse_args()
    if args.record_run is not None:
        # Only a run that produced the results counts: a no-op `dvc repro` leaves the record alone.
        if paths.METRICS.exists() and paths.METRICS.stat().st_mtime >= args.record_run:
            write_json(paths.MAKE_RUN, {"wall_s": round(time.time() - args.record_run, 1), "machine": machine_record()})
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

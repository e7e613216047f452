"""Rewrite the code deps of every stage in dvc.yaml and study/dvc.yaml to the stage's import closure.

    python -m scripts.sync_dag_deps          # rewrite in place
    python -m scripts.sync_dag_deps --check  # exit 1 if a file would change

The closure is the one tests/test_dag.py checks against (liversynth.utils.imports.closure): every
repository file `python -m <flow>` may run. Data, model and report deps, params and outs are kept as
they are; only the `flows/` and `src/` entries of each `deps:` list are replaced, sorted, one file
each. Why a script: after a module moves, hand-editing a dozen deps lists is where the DAG goes stale.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from liversynth.utils.imports import closure

REPO = Path(__file__).resolve().parents[1]
DAGS = (REPO / "dvc.yaml", REPO / "study" / "dvc.yaml")
_CODE = re.compile(r"^(\s+)- (flows|src)/\S+\s*$")
_CMD = re.compile(r"^\s+cmd: python -m (\S+)")


def _code_block(lines: list[str], start: int) -> tuple[int, int, str] | None:
    """(first, end, indent) of the contiguous-or-not code entries in the deps list starting at `start`."""
    idx, first, indent = start + 1, None, ""
    while idx < len(lines) and re.match(r"^\s+- ", lines[idx]):
        if m := _CODE.match(lines[idx]):
            first = idx if first is None else first
            indent = m.group(1)
        idx += 1
    return None if first is None else (first, idx, indent)


def synced(text: str) -> str:
    lines, out, entry = text.splitlines(keepends=True), [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := _CMD.match(line):
            entry = m.group(1)
        out.append(line)
        block = _code_block(lines, i) if line.strip() == "deps:" and entry else None
        if block is not None and entry is not None:
            first, end, indent = block
            kept = [ln for ln in lines[i + 1:end] if not _CODE.match(ln)]
            code = sorted(str(p) for p in closure(REPO, entry))
            out += kept + [f"{indent}- {p}\n" for p in code]
            i = end
            continue
        i += 1
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a DAG file is not in sync")
    args = parser.parse_args()
    stale = []
    for dag in DAGS:
        text = dag.read_text()
        new = synced(text)
        if new != text:
            stale.append(dag.relative_to(REPO))
            if not args.check:
                dag.write_text(new)
    if stale:
        print(("out of sync: " if args.check else "rewrote: ") + ", ".join(map(str, stale)))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())

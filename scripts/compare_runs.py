"""Compare the metrics.json of several runs of one commit (another clone, another thread count, another
machine): byte identity, and every comparison's gain, interval and verdict side by side. Writes
reports/reproducibility.json, which `make results` renders into README.md (block `reproducibility`).

    python scripts/compare_runs.py committed=metrics.json fresh-clone=/path/a/metrics.json \
        threads2=/path/b/metrics.json [--commit SHA]
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from liversynth.evaluation.report import verdict
from liversynth.utils.files import write_json

OUT = Path("reports/reproducibility.json")


def _run(label: str, path: Path) -> dict:
    raw = path.read_bytes()
    m = json.loads(raw)
    gains = {k: {"label": g["label"], "role": g["role"], "mean": g["mean"], "ci_low": g["ci_low"],
                 "ci_high": g["ci_high"], "verdict": verdict(g)}
             for k, g in m.items() if k.startswith("gain_") and isinstance(g, dict) and "label" in g}
    machine = m.get("machine", {})
    return {"label": label, "sha256": hashlib.sha256(raw).hexdigest(), "threads": machine.get("threads"),
            "cpu": machine.get("cpu"), "isa": machine.get("isa"), "gains": gains,
            "test_iou": {arm: v["iou"] for arm, v in m["test"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="LABEL=PATH")
    parser.add_argument("--commit", default="")
    args = parser.parse_args()
    runs = [_run(label, Path(path)) for label, path in (r.split("=", 1) for r in args.runs)]
    first = runs[0]
    for r in runs:
        r["identical_to_first"] = r["sha256"] == first["sha256"]
        r["same_verdicts_as_first"] = all(g["verdict"] == first["gains"][k]["verdict"] for k, g in r["gains"].items())
    write_json(OUT, {"commit": args.commit, "runs": runs})
    print(json.dumps([{k: r[k] for k in ("label", "threads", "identical_to_first", "same_verdicts_as_first")}
                      for r in runs], indent=1))


if __name__ == "__main__":
    main()

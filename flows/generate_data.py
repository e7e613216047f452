"""Write the built-in dataset into data/raw (then `dvc add data/raw` versions it; see the Makefile)."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from flows.common import load_params
from liversynth.phantom import write_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="regenerate even if data/raw exists")
    args = parser.parse_args()
    params = load_params()
    raw = Path(params.data.raw_dir)
    if raw.exists() and any(raw.iterdir()) and not args.force:
        print(f"{raw} already holds data; keeping it (use --force to regenerate)")
        return
    if raw.exists():
        shutil.rmtree(raw)
    write_phantom(params.phantom, raw)
    print(f"wrote the procedural phantom (seed {params.phantom.seed}) to {raw}")


if __name__ == "__main__":
    main()

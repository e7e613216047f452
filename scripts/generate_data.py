"""Write the built-in dataset named in params.yaml into data/raw (`dvc add data/raw` versions it).

- phantom: the procedural phantom (params.yaml `phantom:`).
- real-sample: real CT and MRI converted from the TotalSegmentator source distribution that
  `make data DATASET=real-sample` fetched into data/downloads/ with pip; its sha256 is checked
  against data/real_sample.sha256 first. Nothing is downloaded here.
- any other dataset (nifti, dicom, chaos) is your own data, which must already be in raw_dir.

A built-in dataset replaces the other built-in one; data it did not write is never overwritten
without --force. With --check, nothing is written: every patient is read as the prepare stage will
read it (all the checks, into a throw-away folder), so the Makefile can refuse broken data before
`dvc commit` puts it in the DVC cache.
"""
from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

from flows.common import load_params
from liversynth.paths import DOWNLOADS, REAL_SAMPLE_SHA256
from liversynth.data.phantom import holds_phantom, write_phantom
from liversynth.data.prepare import prepare_dataset
from liversynth.data.real_sample import SDIST_NAME, expected_sha256, holds_real_sample, write_real_sample



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="regenerate even if data/raw holds other data")
    parser.add_argument("--sdist", type=Path, default=DOWNLOADS / SDIST_NAME,
                        help="the downloaded totalsegmentator sdist (real-sample only)")
    parser.add_argument("--check", action="store_true", help="only read data/raw as prepare would")
    args = parser.parse_args()
    params = load_params()
    dataset, raw = params.data.dataset, Path(params.data.raw_dir)
    if args.check:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                splits = prepare_dataset(params, raw, Path(scratch) / "prepared")["splits"]
            except ValueError as err:  # RawDataError and config errors: a message naming the file
                raise SystemExit(f"refusing {raw}, nothing was versioned: {err}") from err
        print(f"{raw}: {sum(len(v['patients']) for v in splits.values())} patients read without problems")
        return
    filled = raw.exists() and any(raw.iterdir())
    if dataset == "phantom":
        if filled and not args.force and not holds_real_sample(raw):
            print(f"{raw} already holds data; keeping it (use --force to regenerate)")
            return
        shutil.rmtree(raw, ignore_errors=True)
        write_phantom(params.phantom, raw)
        print(f"wrote the procedural phantom (seed {params.phantom.seed}) to {raw}")
    elif dataset == "real-sample":
        sha256 = expected_sha256(REAL_SAMPLE_SHA256)
        if filled and holds_real_sample(raw) and sha256 in (raw / "SOURCE.md").read_text() and not args.force:
            print(f"{raw} already holds real-sample; keeping it (use --force to rewrite it)")
            return
        if filled and not args.force and not holds_phantom(raw):
            raise SystemExit(f"{raw} holds data that is neither built-in dataset; move it away or use --force")
        write_real_sample(args.sdist, sha256, raw)
        print(f"wrote real-sample (TotalSegmentator test files, sha256 {sha256[:12]}...) to {raw}")
    elif not filled:
        raise SystemExit(f"{raw} is empty: dataset {dataset!r} reads your own data from there (see README)")
    else:
        print(f"dataset {dataset!r}: using your data in {raw}")


if __name__ == "__main__":
    main()

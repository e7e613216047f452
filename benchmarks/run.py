"""`make bench`: every benchmark with its plain baseline, a table on stdout, JSON in benchmarks/results/.

Each benchmark runs in its own process, so its peak RSS is its own. The data is the built-in
phantom at the sizes in params.yaml, generated into a temporary folder; nothing in the repo is
touched except benchmarks/results/.

    python -m benchmarks.run                 # everything (about 10 min on 2 cores)
    python -m benchmarks.run --only essnet,unet --no-e2e
    python -m benchmarks.run --only unet_ensemble,essnet_ensemble,startup --no-e2e --steps 10 --threads 1
    python -m benchmarks.grid && python -m benchmarks.summary   # the grid; summary.md again (no benchmark)
    LIVERSYNTH_PARAMS=params-paper.yaml python -m benchmarks.run --only essnet,unet,synthesis --no-e2e
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import e2e, measure

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
CASES = ("essnet", "unet", "synthesis", "prepare", "prepare_scaling", "unet_ensemble", "essnet_ensemble", "startup",
         "time_to_quality")
WARMUP, STEPS = 5, 40  # training steps: not counted, then timed
ENSEMBLE_WARMUP = 2  # EssNet ensembles: steps per member not counted (each ~1 s); timed: --steps / 5


def _params():
    """params.yaml, or the file named by LIVERSYNTH_PARAMS (e.g. params-paper.yaml on a GPU)."""
    from liversynth.config import Params

    return Params.from_yaml(REPO / os.environ.get("LIVERSYNTH_PARAMS", "params.yaml"))


def _run_case(name: str, work: Path, steps: int) -> dict:
    """Run one case in this process (called in a child process by `main`)."""
    from benchmarks import cases

    params = _params()
    prepared, out = work / "prepared", work / f"case-{name}"
    out.mkdir(parents=True, exist_ok=True)
    if name == "essnet":
        return cases.essnet(params, prepared, out, WARMUP, steps)
    if name == "unet":
        return cases.unet(params, prepared, out, WARMUP, steps)
    if name in ("unet_ensemble", "essnet_ensemble"):
        from benchmarks import ensemble

        if name == "unet_ensemble":  # K = 6 U-Net seeds; K = 3 generators (the targets' sizes)
            return ensemble.unet_ensemble(params, prepared, WARMUP, steps, k=6)
        return ensemble.essnet_ensemble(params, prepared, out, ENSEMBLE_WARMUP, max(2, steps // 5), k=3)
    if name == "startup":
        from benchmarks.startup import startup

        return startup(REPO, prepared=prepared)
    if name == "synthesis":
        return cases.synthesis(params, prepared, out, repeats=3)
    if name == "prepare":
        return cases.prepare(params, work / "raw", out, repeats=3)
    raise ValueError(name)


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _make_data(work: Path) -> None:
    from liversynth.data.phantom import write_phantom
    from liversynth.data.prepare import prepare_dataset

    os.environ["TQDM_DISABLE"] = "1"
    params = _params()
    write_phantom(params.phantom, work / "raw")
    prepare_dataset(params, work / "raw", work / "prepared")


def _scaling(work: Path) -> dict:
    """Prepare on N and 4N patients (one process each): peak RSS must not grow, time must grow ~4x.

    Volumes are larger than the default (96 x 96 x 24, kept at 96 px) so that holding them all, as
    the plain baseline does, shows in the RSS; the 4N cohort repeats the N cohort's files.
    """
    from liversynth.config import PhantomConfig, PrepareConfig
    from liversynth.data.phantom import write_phantom

    base = _params()
    phantom = PhantomConfig(seed=0, n_ct=8, n_mri=8, size=96, slices=24, spacing_mm=4.0)
    write_phantom(phantom, work / "scale-src")
    out: dict = {"name": "prepare_scaling", "volume": [96, 96, 24], "runs": {}}
    for factor in (2, 8):  # N = 32 patients, 4N = 128
        raw = work / f"scale-raw-{factor}"
        for modality in ("ct", "mri"):
            for src in sorted((work / "scale-src" / modality).iterdir()):
                for k in range(factor):
                    shutil.copytree(src, raw / modality / f"{src.name}r{k}")
        n_ct = n_mri = 8 * factor
        splits = {"train": n_mri // 4, "unlabelled": n_mri // 4, "val": n_mri // 4, "test": n_mri // 4}
        params = base.model_copy(update={"data": base.data.model_copy(update={"dataset": "nifti"}),
                                       "prepare": PrepareConfig(image_size=96, mri_splits=splits)})
        cfg = work / f"scale-params-{factor}.json"
        cfg.write_text(json.dumps(params.model_dump(by_alias=True)))
        for kind in ("optimised", "baseline"):
            run = _child(["--prepare-one", str(cfg), str(raw), str(work / f"scale-out-{factor}-{kind}"), kind])
            out["runs"][f"{kind}_{n_ct + n_mri}"] = run
    return out


def _summarise_scaling(res: dict) -> dict:
    runs = res["runs"]
    sizes = sorted({int(k.rsplit("_", 1)[1]) for k in runs})
    n, n4 = sizes
    for kind in ("optimised", "baseline"):
        a, b = runs[f"{kind}_{n}"], runs[f"{kind}_{n4}"]
        res[f"{kind}_rss_growth_mb"] = round(b["peak_rss_mb"] - a["peak_rss_mb"], 1)
        res[f"{kind}_time_ratio_4n_over_n"] = round(b["seconds"] / a["seconds"], 2)
        res[f"{kind}_us_per_slice"] = [round(1e6 * r["seconds"] / r["slices"], 1) for r in (a, b)]
    res["patients"] = [n, n4]
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(CASES), help=f"comma-separated subset of {CASES}")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end dvc repro timing")
    parser.add_argument("--e2e-baseline", action="store_true",
                        help="also time dvc repro without the shared Prefect server (doubles its time)")
    parser.add_argument("--steps", type=int, default=STEPS, help="timed training steps per variant")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in every benchmark process (default: torch's, one per core); "
                             "1 keeps figures stable on a machine others are using too")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--prepare-one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:  # children and the e2e stages inherit it; torch reads it at start-up
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)  # this process imported torch already

    if args.case:  # child: one case, JSON on the last line of stdout
        print(json.dumps(_run_case(args.case, Path(args.work), args.steps)))
        return 0
    if args.prepare_one:
        from benchmarks import cases
        from liversynth.config import Params

        cfg, raw, out, kind = args.prepare_one
        params = Params.from_yaml(cfg)  # JSON is YAML
        print(json.dumps(cases.prepare_one(params, Path(raw), Path(out), plain=kind == "baseline")))
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    info = {"machine": measure.machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    results: dict[str, dict] = {}

    def record(res: dict) -> None:  # written as soon as known: a later failure loses nothing
        results[res["name"]] = res
        (RESULTS / f"{res['name']}.json").write_text(json.dumps({**res, **info}, indent=2) + "\n")

    def attempt(name: str, run) -> None:
        print(f"benchmark {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            found = run()
        except Exception as err:  # noqa: BLE001  (report it, go on with the other benchmarks)
            print(f"benchmark {name} FAILED: {err}", file=sys.stderr, flush=True)
            record({"name": name, "error": str(err)[-3000:]})
            return
        for res in found if isinstance(found, list) else [found]:
            record({**res, "wall_s": round(time.perf_counter() - t0, 1)})

    with tempfile.TemporaryDirectory(prefix="liversynth-bench-") as tmp:
        work = Path(tmp)
        wanted = [c for c in args.only.split(",") if c]
        if set(wanted) & {"essnet", "unet", "synthesis", "prepare", "unet_ensemble", "essnet_ensemble", "startup"}:
            _make_data(work)
        for name in wanted:
            if name == "time_to_quality":  # writes its own JSON and figure (benchmarks/time_to_quality.py)
                subprocess.run([sys.executable, "-m", "benchmarks.time_to_quality", "sweep", "--work",
                                str(work / "ttq")], cwd=REPO, check=True)
                continue
            attempt(name, (lambda: _summarise_scaling(_scaling(work))) if name == "prepare_scaling" else (
                lambda name=name: _child(["--case", name, "--work", str(work), "--steps", str(args.steps)])))
        if not args.no_e2e:
            attempt("dvc_repro", lambda: e2e.run(REPO, work / "e2e", baseline=args.e2e_baseline))
    # The tables cover every result on disk, so a partial run (--only) updates just its rows.
    from benchmarks.summary import write_summary

    table = write_summary(RESULTS)
    print(table)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Batch inference: `python -m flows.segment_folder IN_DIR OUT_DIR [--model URI]` segments every study
in IN_DIR with the champion (loaded weights-only) into OUT_DIR/<study>.nii.gz.

Resumable: finished outputs are skipped, so rerun it after a kill. One MLflow run (stage
`segment_folder`) records the model version, counts and timings; a bad study is reported by name,
the others still run, and the flow fails at the end if any study failed.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import mlflow
from prefect import flow, get_run_logger

from flows.common import start_stage
from liversynth.data.readers.base import RawDataError
from liversynth.inference.batch import list_studies, output_for, segment_study
from liversynth.inference.loading import load_registered
from liversynth.runtime.device import pick_device
from liversynth.tracking.runs import stage_run

DEFAULT_MODEL = "models:/liversynth-unet@champion"


@flow(name="segment_folder")
def segment_folder_flow(in_dir: str, out_dir: str, model_uri: str = DEFAULT_MODEL, batch_size: int = 32) -> dict:
    params = start_stage()
    log = get_run_logger()
    studies = list_studies(Path(in_dir))
    start = time.perf_counter()
    with stage_run(params, "segment_folder", model_uri=model_uri, in_dir=str(in_dir), out_dir=str(out_dir)):
        model = load_registered(model_uri, mlflow.get_tracking_uri(), pick_device())
        mlflow.set_tags({"model_name": str(model.name), "model_version": str(model.version)})
        todo = [s for s in studies if not output_for(s, Path(out_dir)).exists()]
        failed: dict[str, str] = {}
        for k, study in enumerate(todo, 1):
            try:
                result = segment_study(model, study, Path(out_dir), batch_size)
            except RawDataError as err:
                failed[study.name] = str(err)
                log.error("%s", err)
                continue
            mlflow.log_metrics({"study_seconds": result.seconds, "study_liver_ml": result.liver_ml}, step=k)
            log.info("%s: %d slices, %.1f mL, %.2f s", result.study, result.slices, result.liver_ml, result.seconds)
        summary = {"n_studies": len(studies), "n_skipped": len(studies) - len(todo),
                   "n_segmented": len(todo) - len(failed), "n_failed": len(failed),
                   "seconds_total": time.perf_counter() - start}
        mlflow.log_metrics(summary)
        mlflow.log_dict({"summary": summary, "failed": failed, "model": model.uri, "version": model.version},
                        "segment_folder.json")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(studies)} studies failed: " + "; ".join(failed.values()))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("in_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model URI (default {DEFAULT_MODEL})")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    segment_folder_flow(args.in_dir, args.out_dir, args.model, args.batch_size)


if __name__ == "__main__":
    main()

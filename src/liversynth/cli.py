"""`liversynth segment|translate|lineage|promote`: the champion and the registry from a shell.

The only command-line entry point of the package, kept to argument parsing; the logic lives in
liversynth.inference (segment, translate) and liversynth.tracking.registry (lineage, promote).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from liversynth.config import Params
from liversynth.tracking.registry import lineage, promote
from liversynth.tracking.store import resolve_tracking_uri

__all__ = ["main"]

DEFAULT_MODELS = {"segment": "models:/liversynth-unet@champion", "translate": "models:/liversynth-ct2mri@champion"}


def _tracking_uri(uri: str | None) -> str:
    if uri is not None:
        return resolve_tracking_uri(uri)
    params = Path("params.yaml")
    return resolve_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or (
        Params.from_yaml(params).mlflow.tracking_uri if params.exists() else Params().mlflow.tracking_uri))


def _apply(args: argparse.Namespace, uri: str) -> None:
    import mlflow

    from liversynth.inference.apply import segment_scan, translate_scan
    from liversynth.inference.loading import load_registered
    from liversynth.inference.scan import read_scan, write_on_grid
    from liversynth.runtime.device import pick_device

    if not args.output.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{args.output}: output must be a .nii or .nii.gz file")
    scan = read_scan(args.scan, args.mr_sequence)  # bad input fails before any model is downloaded
    mlflow.set_tracking_uri(uri)
    model = load_registered(args.model or DEFAULT_MODELS[args.command], uri, pick_device())
    progress = sys.stderr.isatty()
    where = f"{model.name} v{model.version}" if model.version else model.uri
    if args.command == "segment":
        mask, ml = segment_scan(model.module, model.spec, scan, args.batch_size, progress)
        write_on_grid(scan, mask, args.output)
        print(f"{args.output}: liver mask ({where}); liver volume {ml:.1f} mL")
    else:
        image = translate_scan(model.module, model.spec, scan, args.batch_size, progress)
        write_on_grid(scan, image, args.output, dtype=np.float32)
        print(f"{args.output}: MRI-like image in [-1, 1] ({where})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liversynth", description=__doc__)
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else params.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, what in (("segment", "liver mask of an MRI scan"), ("translate", "MRI-like image of a CT scan")):
        cmd = sub.add_parser(name, help=f"{what}, on the scan's own grid, with a registered model")
        cmd.add_argument("scan", type=Path, help="NIfTI file, DICOM series folder, or patient folder (CHAOS too)")
        cmd.add_argument("-o", "--output", type=Path, required=True, help="output .nii.gz")
        cmd.add_argument("--model", help=f"model URI or local model folder (default {DEFAULT_MODELS[name]})")
        cmd.add_argument("--tracking-uri", dest="cmd_tracking_uri", help="MLflow store (as above)")
        cmd.add_argument("--batch-size", type=int, default=32)
        cmd.add_argument("--mr-sequence", default="T2SPIR", help="CHAOS MR folder: T2SPIR | T1DUAL/InPhase | ...")
    show = sub.add_parser("lineage", help="show where a registered model came from")
    show.add_argument("model", help="NAME@ALIAS, e.g. liversynth-unet@champion")
    move = sub.add_parser("promote", help="move 'champion' to the challenger (or --version) if its gate passed")
    move.add_argument("name", nargs="?", default="liversynth-unet")
    move.add_argument("--version")
    move.add_argument("--force", action="store_true", help="a person overrides the gate (tagged on the version)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    uri = _tracking_uri(getattr(args, "cmd_tracking_uri", None) or args.tracking_uri)
    try:
        if args.command in DEFAULT_MODELS:
            if args.batch_size < 1:
                raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
            _apply(args, uri)
        elif args.command == "lineage":
            name, _, alias = args.model.partition("@")
            for key, value in lineage(MlflowClient(uri), name, alias or "champion").items():
                print(f"{key:28s} {value}")
        else:
            print(f"{args.name}: champion -> v{promote(MlflowClient(uri), args.name, args.version, args.force)}")
    except Exception as err:  # noqa: BLE001  (one readable line for the shell, not a traceback)
        print(f"liversynth: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`liversynth lineage <model>@<alias>` and `liversynth promote <model>`: the registry from a shell.

The only command-line entry point of the package, kept to argument parsing; the logic lives in
liversynth.tracking.registry.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from liversynth.config import Params
from liversynth.tracking.registry import lineage, promote

__all__ = ["main"]


def _client(uri: str | None) -> MlflowClient:
    if uri is None:
        params = Path("params.yaml")
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (
            Params.from_yaml(params).mlflow.tracking_uri if params.exists() else Params().mlflow.tracking_uri)
    return MlflowClient(uri)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="liversynth", description=__doc__)
    parser.add_argument("--tracking-uri", help="MLflow store (default: params.yaml mlflow.tracking_uri)")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("lineage", help="show where a registered model came from")
    show.add_argument("model", help="NAME@ALIAS, e.g. liversynth-unet@champion")
    move = sub.add_parser("promote", help="move 'champion' to the challenger (or --version) if its gate passed")
    move.add_argument("name", nargs="?", default="liversynth-unet")
    move.add_argument("--version")
    move.add_argument("--force", action="store_true", help="a person overrides the gate (tagged on the version)")
    args = parser.parse_args(argv)
    client = _client(args.tracking_uri)
    try:
        if args.command == "lineage":
            name, _, alias = args.model.partition("@")
            for key, value in lineage(client, name, alias or "champion").items():
                print(f"{key:28s} {value}")
        else:
            print(f"{args.name}: champion -> v{promote(client, args.name, args.version, args.force)}")
    except Exception as err:  # noqa: BLE001  (one readable line for the shell, not a traceback)
        print(f"liversynth: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every stage flow shares: reading params.yaml (LIVERSYNTH_PARAMS names another file)."""
from __future__ import annotations

import os
from pathlib import Path

from liversynth.config import Params

__all__ = ["PARAMS_PATH", "load_params"]

PARAMS_PATH = Path(os.environ.get("LIVERSYNTH_PARAMS", "params.yaml"))


def load_params() -> Params:
    return Params.from_yaml(PARAMS_PATH)

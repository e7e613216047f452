"""What every stage flow shares: reading params.yaml (LIVERSYNTH_PARAMS names another file) and
applying its `runtime:` section (threads, determinism) before any torch work."""
from __future__ import annotations

import os
from pathlib import Path

from liversynth.config import Params
from liversynth.runtime.settings import apply_runtime

__all__ = ["PARAMS_PATH", "load_params"]

PARAMS_PATH = Path(os.environ.get("LIVERSYNTH_PARAMS", "params.yaml"))


def load_params() -> Params:
    params = Params.from_yaml(PARAMS_PATH)
    apply_runtime(params.runtime)
    return params

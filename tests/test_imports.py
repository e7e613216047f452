"""A stage that neither trains nor runs a U-Net starts without MONAI (seconds of import time, issue 22).

One fresh interpreter, as a DVC stage starts one, imports the stages' flow modules in turn and reports
which heavy packages were loaded after each: a stage's list is what it and the stages before it
loaded, so an empty list clears the stage.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("monai", "great_expectations", "optuna", "matplotlib")
NO_UNET = ("prepare", "validate", "train_essnet", "synthesize")
WITH_UNET = ("train_unet", "evaluate")

_PROBE = """
import importlib, json, sys
heavy, out = {heavy!r}, {{}}
for module in sys.argv[1:]:
    importlib.import_module(module)
    out[module] = [m for m in heavy if m in sys.modules]
print(json.dumps(out))
"""


def _loaded(*modules: str) -> dict[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *modules], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_stage_imports_leave_heavy_packages_to_the_code_that_uses_them() -> None:
    """MONAI stays out of stages without a U-Net; GX (imported when validation runs), Optuna (the tuning
    stage) and matplotlib (when a figure is drawn) stay out of every stage module's import."""
    loaded = _loaded(*(f"flows.{s}" for s in NO_UNET + WITH_UNET), "monai.losses")
    for stage in NO_UNET:
        assert loaded[f"flows.{stage}"] == [], stage
    for stage in WITH_UNET:
        assert [m for m in loaded[f"flows.{stage}"] if m != "monai"] == [], stage
    assert "monai" in loaded["monai.losses"]  # the probe sees a heavy import when there is one

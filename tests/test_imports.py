"""Stages start without MONAI (seconds of import time, issue 22): the U-Nets and their loss are plain torch
(liversynth.models.seg_unet, .losses), so neither importing a stage nor building its models loads MONAI.

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
OPTUNA = ("tuning", "study")  # Optuna at import: these stages tune; probed last, as it is then loaded

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
    """MONAI, GX (imported when validation runs), Optuna (when the tuning stage tunes) and matplotlib (when a
    figure is drawn) stay out of every stage module's import, the U-Net stages' included."""
    loaded = _loaded(*(f"flows.{s}" for s in NO_UNET + WITH_UNET + OPTUNA), "monai.losses")
    for stage in NO_UNET + WITH_UNET:
        assert loaded[f"flows.{stage}"] == [], stage
    for stage in OPTUNA:
        assert [m for m in loaded[f"flows.{stage}"] if m != "optuna"] == [], stage
    assert "monai" in loaded["monai.losses"]  # the probe sees a heavy import when there is one


_BUILD = """
import json, sys
import torch
from liversynth.config import Params
from liversynth.models.essnet import EssNet
from liversynth.models.losses import dice_ce
from liversynth.models.unet import build_unet
params = Params.from_yaml("params.yaml")
x, y = torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16, dtype=torch.long)
dice_ce(EssNet(params.essnet).segmenter(x), y).backward()
dice_ce(build_unet(params.unet)(x), y).backward()
print(json.dumps([m for m in ("monai",) if m in sys.modules]))
"""


def test_building_and_stepping_the_models_leaves_monai_out() -> None:
    """Up to the first training step (EssNet's segmenter, the study U-Net, their loss), MONAI stays unloaded:
    a stage's quick start is not just its module import."""
    proc = subprocess.run([sys.executable, "-c", _BUILD], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []

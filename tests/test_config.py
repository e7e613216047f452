"""params.yaml is validated before anything runs: one test per rule, each error names the file, the
dotted key, the value and the rule."""
from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from liversynth.config import DATASETS, EssNetConfig, Params, UNetConfig
from tests.conftest import REPO

TINY = yaml.safe_load((REPO / "tests" / "tiny_params.yaml").read_text())


def _write(tmp_path: Path, changes: dict[str, Any]) -> Path:
    raw = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _error(tmp_path: Path, changes: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as info:
        Params.from_yaml(_write(tmp_path, changes))
    return str(info.value)


def test_repo_params_load_into_typed_objects():
    params = Params.from_yaml(REPO / "params.yaml")
    assert params.essnet.lambda_cycle == 10.0 and params.essnet.lambda_seg == 1.0
    assert isinstance(params.unet.channels, tuple) and 0.0 in params.tune.ratios
    assert params.section("essnet")["lr"] == pytest.approx(2e-4)
    assert params.validate.min_slices["ct_train"] == 16 and "min_slices" in params.section("validate")


@pytest.mark.parametrize("name", ["params.yaml", "params-paper.yaml", "params-real-sample.yaml", "params-chaos.yaml",
                                  "tests/tiny_params.yaml"])
def test_every_shipped_params_file_is_valid(name: str):
    Params.from_yaml(REPO / name)


def test_defaults_and_the_dataclass_api_replacements():
    cfg = EssNetConfig()
    assert cfg.steps == 500 and cfg.seg_channels == (16, 32, 64)
    assert cfg.model_copy(update={"lambda_seg": 0.0}).lambda_seg == 0.0 and cfg.lambda_seg == 1.0
    assert UNetConfig().model_dump()["strides"] == (2, 2, 2)
    assert not dataclasses.is_dataclass(cfg)
    with pytest.raises(Exception):
        cfg.steps = 3  # type: ignore[misc]  # frozen


def test_dataset_names_match_the_reader_registry():
    from liversynth.data.readers.registry import DATASETS as READERS

    assert tuple(DATASETS) == tuple(READERS)


# (changes to the tiny config, the expected error line)
RULES = {
    "steps >= 1": ({"essnet.steps": -5}, r"^\S+params.yaml: essnet.steps = -5: must be >= 1$"),
    "unknown key": ({"essnet.stepz": 3}, r"essnet.stepz = 3: unknown key; known: \[.*'steps'"),
    "unknown section": ({"trian": {}}, r"trian = \{\}: unknown key"),
    "string is not a number": ({"phantom.spacing_mm": "6"}, r"phantom.spacing_mm = '6': expected a number"),
    "string is not an int": ({"unet.steps": "many"}, r"unet.steps = 'many': expected an integer"),
    "bool is not an int": ({"unet.steps": True}, r"unet.steps = True: expected an integer"),
    "union member checked": ({"data.liver_label": {"ct": "x"}},
                             r"data.liver_label.ct = 'x': expected an integer or expected a list"),
    "dict value checked": ({"validate.min_slices": {"ct_train": "8"}},
                           r"validate.min_slices.ct_train = '8': expected an integer"),
    "label range": ({"data.liver_label": {"ct": [3, 1]}}, r"data.liver_label.ct = \[3, 1\]: a range must be"),
    "spacing > 0": ({"data.spacing_mm": 0.0}, r"data.spacing_mm = 0.0: must be > 0"),
    "dataset known": ({"data.dataset": "nifty"}, r"data.dataset = 'nifty': must be one of"),
    "unet batch_size >= 1": ({"unet.batch_size": 0}, r"unet.batch_size = 0: must be >= 1"),
    "essnet batch_size >= 1": ({"essnet.batch_size": 0}, r"essnet.batch_size = 0: must be >= 1"),
    "synthesize batch_size >= 1": ({"synthesize.batch_size": 0}, r"synthesize.batch_size = 0: must be >= 1"),
    "lr > 0": ({"unet.lr": 0.0}, r"unet.lr = 0.0: must be > 0"),
    "essnet lr > 0": ({"essnet.lr": -1e-3}, r"essnet.lr = -0.001: must be > 0"),
    "beta1 < 1": ({"essnet.beta1": 1.0}, r"essnet.beta1 = 1.0: must be < 1"),
    "lambda >= 0": ({"essnet.lambda_seg": -1.0}, r"essnet.lambda_seg = -1.0: must be >= 0"),
    "checkpoint_every >= 1": ({"essnet.checkpoint_every": 0}, r"essnet.checkpoint_every = 0: must be >= 1"),
    "seg_channels depth": ({"essnet.seg_channels": [8]}, r"essnet.seg_channels = \[8\]: needs at least 2 levels"),
    "channels positive": ({"unet.channels": [8, 0, 32]}, r"unet.channels.1 = 0: must be >= 1"),
    "strides per level": ({"unet.strides": [2]}, r"unet.strides = \[2\]: needs len\(channels\) - 1 = 2"),
    "eval_every >= 1": ({"unet.eval_every": 0}, r"unet.eval_every = 0: must be >= 1"),
    "anneal in [0, 1]": ({"unet.synthetic_anneal": 1.5}, r"unet.synthetic_anneal = 1.5: must be <= 1"),
    "ratios non-empty": ({"tune.ratios": []}, r"tune.ratios = \[\]: must not be empty"),
    "ratios >= 0": ({"tune.ratios": [0.0, -1.0]}, r"tune.ratios.1 = -1.0: must be >= 0"),
    "ratios finite": ({"tune.ratios": [0.0, float("inf")]}, r"tune.ratios.1 = inf: must be a finite number"),
    "seeds non-empty": ({"evaluate.seeds": []}, r"evaluate.seeds = \[\]: must not be empty"),
    "seeds distinct": ({"evaluate.seeds": [1, 1]}, r"evaluate.seeds = \[1, 1\]: seeds must be distinct"),
    "ci in (0, 1)": ({"evaluate.ci": 1.0}, r"evaluate.ci = 1.0: must be < 1"),
    "ci > 0": ({"evaluate.ci": 0.0}, r"evaluate.ci = 0.0: must be > 0"),
    "n_bootstrap >= 1": ({"evaluate.n_bootstrap": 0}, r"evaluate.n_bootstrap = 0: must be >= 1"),
    "threads >= 1": ({"runtime.threads": 0}, r"runtime.threads = 0: must be >= 1"),
    "interop threads >= 1": ({"runtime.interop_threads": 0}, r"runtime.interop_threads = 0: must be >= 1"),
    "min_liver_fraction <= 1": ({"validate.min_liver_fraction": 2.0}, r"min_liver_fraction = 2.0: must be <= 1"),
    "ct window ordered": ({"prepare.ct_window": [350.0, -250.0]}, r"prepare.ct_window = \[350.0, -250.0\]: must be"),
    "ct window is a pair": ({"prepare.ct_window": [1.0, 2.0, 3.0]}, r"prepare.ct_window = .*at most 2"),
    "percentiles in [0, 100]": ({"prepare.mri_percentiles": [0.5, 101.0]}, r"mri_percentiles = .*<= 100"),
    "split names known": ({"prepare.mri_splits": {"train": 1, "val": 2, "test": 2, "tset": 1}},
                          r"prepare.mri_splits.tset = 'tset': must be one of 'train'"),
    "split needs train": ({"prepare.mri_splits": {"train": 0, "val": 2, "test": 2}},
                          r"prepare.mri_splits = .*at least 1 MRI patient in 'train'"),
    "splits fit the phantom cohort": ({"prepare.mri_splits": {"train": 3, "unlabelled": 1, "val": 2, "test": 2}},
                                      r"prepare.mri_splits = .*asks for 8 MRI patients .*phantom.n_mri = 6"),
    "phantom cohort >= 1": ({"phantom.n_ct": 0}, r"phantom.n_ct = 0: must be >= 1"),
    "image size vs unet stride": ({"unet.channels": [8, 16, 32, 64], "unet.strides": [2, 4, 8]},
                                  r"prepare.image_size = 32: must be divisible by 64 \(the U-Net's total stride"),
    "image size vs generator": ({"prepare.image_size": 30, "unet.strides": [1, 1]},
                                r"prepare.image_size = 30: must be divisible by 4 \(the EssNet generator"),
    "image size vs segmenter": ({"essnet.seg_channels": [4, 8, 16, 32, 64, 128, 256]},
                                r"prepare.image_size = 32: must be divisible by 64 \(the EssNet segmenter"),
    "image size vs phantom": ({"prepare.image_size": 64}, r"prepare.image_size = 64: must be <= phantom.size = 32"),
    "image size minimum": ({"prepare.image_size": 4}, r"prepare.image_size = 4: must be >= 8"),
    "names non-empty": ({"register.unet_name": ""}, r"register.unet_name = '': must not be empty"),
    "generator seeds pair with U-Net seeds": ({"essnet.seeds": [0, 1, 2]},
                                              r"essnet.seeds = \[0, 1, 2\]: needs 1 or len\(evaluate.seeds\) = 2"),
    "generator seeds distinct": ({"essnet.seeds": [1, 1]}, r"essnet.seeds = \[1, 1\]: values must be distinct"),
    "labelled patients fit the split": ({"unet.labelled_patients": 2},
                                        r"unet.labelled_patients = 2: asks for more labelled patients than"),
    "study counts fit the split": ({"study.labelled_patients": [1, 4]},
                                   r"study.labelled_patients = \[1, 4\]: asks for more labelled patients"),
    "baseline gets the mix's budget": ({"tune.lrs": [0.001], "tune.baseline_steps": [5, 6, 7]},
                                       r"tune.baseline_steps = \[5, 6, 7\]: needs one entry per non-zero ratio \(1\)"),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_rule(tmp_path: Path, rule: str):
    changes, expected = RULES[rule]
    message = _error(tmp_path, changes)
    assert re.search(expected, message, re.M), message
    assert str(tmp_path / "params.yaml") in message


def test_every_problem_is_reported_once(tmp_path: Path):
    lines = _error(tmp_path, {"essnet.steps": -5, "unet.batch_size": 0}).splitlines()
    assert len(lines) == 2 and "essnet.steps = -5" in lines[0] and "unet.batch_size = 0" in lines[1]


def test_yaml_syntax_error_is_named(tmp_path: Path):
    bad = tmp_path / "params.yaml"
    bad.write_text("essnet: [steps: 3\n")
    with pytest.raises(ValueError, match=r"params.yaml: cannot read parameters"):
        Params.from_yaml(bad)


def test_check_command_fails_fast_with_one_line(tmp_path: Path):
    """`python -m liversynth.config` (make run's first step) fails in seconds, before dvc repro."""
    bad = _write(tmp_path, {"essnet.steps": -5})
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "liversynth.config", str(bad)], capture_output=True, text=True)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1 and proc.stderr.strip() == f"{bad}: essnet.steps = -5: must be >= 1", proc.stderr
    assert elapsed < 10
    ok = subprocess.run([sys.executable, "-m", "liversynth.config", str(REPO / "params.yaml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": ok")

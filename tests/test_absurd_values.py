"""Absurd values stop early: the schema refuses inf/nan and out-of-range numbers naming the key, a
literal `1e9` reads as a number, and a training whose loss goes non-finite stops at its next log,
naming the step window, the loss term and the params key, instead of training NaN weights to the end."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from liversynth.config import EssNetConfig, Params, UNetConfig
from liversynth.data.slice_set import SliceSet
from liversynth.training.essnet import train_essnet
from liversynth.training.loop import DivergedError
from liversynth.training.unet import train_unet
from tests.conftest import REPO

TINY_TEXT = (REPO / "tests" / "tiny_params.yaml").read_text()
CPU = torch.device("cpu")


def _with(tmp_path: Path, section: str, line: str) -> Path:
    """tiny_params.yaml with `line` (raw YAML text, so `.inf` and `1e9` stay what a user types) set in
    `section`."""
    key, literal = (part.strip() for part in line.split(":", 1))
    raw = yaml.safe_load(TINY_TEXT)
    raw[section][key] = "__LITERAL__"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw).replace("__LITERAL__", literal))
    return path


@pytest.mark.parametrize(("section", "line", "expected"), [
    ("essnet", "lambda_cycle: .inf", "essnet.lambda_cycle = inf: must be a finite number"),
    ("essnet", "lambda_seg: .nan", "essnet.lambda_seg = nan: must be a finite number"),
    ("essnet", "lr: 1.0e+9", "essnet.lr = 1000000000.0: must be <= 1"),
    ("essnet", "lr: 1e9", "essnet.lr = 1000000000.0: must be <= 1"),
    ("essnet", "lr: 0", "essnet.lr = 0"),
    ("essnet", "lambda_cycle: -1.0", "essnet.lambda_cycle = -1.0: must be >= 0"),
    ("essnet", "steps: 0", "essnet.steps = 0: must be >= 1"),
    ("unet", "lr: -.inf", "unet.lr = -inf: must be a finite number"),
    ("tune", "lrs: [0.001, 5.0]", "tune.lrs.1 = 5.0: must be <= 1"),
    ("prepare", "ct_window: [-.inf, 350.0]", "prepare.ct_window.0 = -inf: must be a finite number"),
    ("register", "margin: .nan", "register.margin = nan: must be a finite number"),
])
def test_absurd_values_are_refused_in_one_line_naming_the_key(tmp_path: Path, section: str, line: str,
                                                              expected: str) -> None:
    path = _with(tmp_path, section, line)
    with pytest.raises(ValueError) as info:
        Params.from_yaml(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: {expected}"), message


def test_exponent_literals_read_as_numbers(tmp_path: Path) -> None:
    """PyYAML alone reads `1e-4` as the string "1e-4" (then refused as 'expected a number')."""
    assert Params.from_yaml(_with(tmp_path, "essnet", "lr: 1e-4")).essnet.lr == 1e-4
    assert Params.from_yaml(_with(tmp_path, "unet", "lr: 5E-3")).unet.lr == 5e-3
    assert Params.from_yaml(_with(tmp_path, "essnet", "steps: 3")).essnet.steps == 3  # ints stay ints


def _essnet_data(size: int = 32) -> tuple[SliceSet, np.ndarray]:
    rng = np.random.default_rng(0)
    ct = rng.uniform(-1, 1, (4, 1, size, size)).astype(np.float32)
    labels = (rng.uniform(size=(4, size, size)) > 0.5).astype(np.uint8)
    mri = rng.uniform(-1, 1, (4, 1, size, size)).astype(np.float32)
    return SliceSet(ct, labels, np.array(["a", "a", "b", "b"])), mri


def test_essnet_with_a_diverging_value_stops_at_the_first_log(tmp_path: Path) -> None:
    ct, mri = _essnet_data()
    good = EssNetConfig(steps=40, batch_size=2, ngf=4, n_blocks=1, ndf=4, seg_channels=(4, 8), pool_size=2,
                        checkpoint_every=40)
    # Past the schema (as a config built in code could be): a lambda float32 makes inf.
    absurd = EssNetConfig.model_construct(**{**good.model_dump(), "lambda_cycle": 1e39})
    logged: list[int] = []
    with pytest.raises(DivergedError) as info:
        train_essnet(ct, mri, absurd, seed=0, checkpoint=tmp_path / "c.pt", device=CPU, log_every=2,
                     on_log=lambda step, _: logged.append(step))
    message = str(info.value)
    assert message.startswith("essnet seed=0: non-finite loss") and "'cycle' = " in message, message
    assert "in steps 1-2" in message
    assert "essnet.lr" in message and "\n" not in message
    assert logged == [] and not (tmp_path / "c.pt").exists()  # nothing NaN logged or checkpointed
    # Control: the same config with a sane lambda trains to the end.
    assert train_essnet(ct, mri, good.model_copy(update={"steps": 4}), seed=0, checkpoint=tmp_path / "d.pt",
                        device=CPU, log_every=2).steps_done == 4


def test_unet_with_a_diverging_lr_stops_naming_unet_lr() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, 1, 16, 16)).astype(np.float32)
    labels = (images[:, 0] > 0).astype(np.uint8)
    real = SliceSet(images, labels, np.array(["a", "a", "b", "b"]))
    good = UNetConfig(channels=(4, 8), strides=(2,), num_res_units=0, steps=60, batch_size=2, eval_every=2)
    absurd = UNetConfig.model_construct(**{**good.model_dump(), "lr": float("inf")})
    evals: list[int] = []
    with pytest.raises(DivergedError) as info:
        train_unet(real, None, 0.0, absurd, seed=0, progress=False, on_eval=lambda i, _: evals.append(i))
    assert "unet seed=0: non-finite loss 'train_loss'" in str(info.value) and "unet.lr" in str(info.value)
    assert evals == [] or max(evals) < good.steps  # stopped early, not at the end

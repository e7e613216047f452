from pathlib import Path

import pytest

from liversynth.config import Params
from tests.conftest import REPO


def test_repo_params_load_into_typed_objects():
    params = Params.from_yaml(REPO / "params.yaml")
    assert params.essnet.lambda_cycle == 10.0 and params.essnet.lambda_seg == 1.0
    assert isinstance(params.unet.channels, tuple) and 0.0 in params.tune.ratios
    assert params.section("essnet")["lr"] == pytest.approx(2e-4)


def test_unknown_key_is_named(tmp_path: Path):
    bad = tmp_path / "params.yaml"
    bad.write_text("essnet:\n  stepz: 3\n")
    with pytest.raises(ValueError, match=r"essnet.*stepz"):
        Params.from_yaml(bad)


def test_wrong_type_is_named(tmp_path: Path):
    bad = tmp_path / "params.yaml"
    bad.write_text("unet:\n  steps: many\n")
    with pytest.raises(ValueError, match=r"unet:steps.*expected int"):
        Params.from_yaml(bad)

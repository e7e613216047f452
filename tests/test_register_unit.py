"""The register stage's gate and units against a real MLflow registry (sqlite in tmp): every refusal has
its reason, a pickle-format champion is never executed, a half-made unit is completed, not duplicated."""
from __future__ import annotations

import pickle
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from liversynth.data.prepare import to_network_slices
from liversynth.data.readers.base import Volume
from liversynth.data.slice_set import SliceSet
from liversynth.evaluation.metrics import per_patient_iou
from liversynth.inference.pyfunc import log_pyfunc
from liversynth.models.unet import build_unet
from liversynth.tracking.registry import (CHALLENGER, CHAMPION, COMPLETE_TAG, UnitMember, alias_version,
                                          challenge_champion, register_unit)
from tests.champion_models import PREP, TINY, box_volume, register, train_box_unet, unet_spec

NAME = "liversynth-unet"
GOOD_GAIN = {"mean": 0.02, "ci_low": 0.004, "ci_high": 0.03, "n": 8}


@pytest.fixture(scope="module")
def box_unet():
    return train_box_unet()


@pytest.fixture(scope="module")
def test_split() -> SliceSet:
    images, labels, pids = [], [], []
    for k in range(4):
        img, lab = box_volume(50 + k, (3, 40, 36))
        x, y = to_network_slices(Volume(f"t{k}", "mri", img, lab, (2.0, 1.0, 1.0), Path()), PREP, None)
        images.append(x[:, None])
        labels.append(y)
        pids += [f"t{k}"] * len(y)
    return SliceSet(np.concatenate(images).astype(np.float32), np.concatenate(labels), np.array(pids))


def _decide(client, test, challenger, baseline=GOOD_GAIN, margin=0.0):
    return challenge_champion(client, NAME, test, per_patient_iou(challenger, test), unet_spec().preprocessing(),
                              baseline, margin=margin, n_bootstrap=200, ci=0.95)


def test_first_run_needs_a_gain_over_the_baseline(mlflow_store, box_unet, test_split):
    client = MlflowClient()
    ok = _decide(client, test_split, box_unet)
    assert ok.promote and ok.code == "first_beats_baseline" and "real-only" in ok.reason
    low = _decide(client, test_split, box_unet, {"mean": 0.01, "ci_low": -0.002, "ci_high": 0.02})
    assert not low.promote and low.code == "first_not_better"
    assert not _decide(client, test_split, box_unet, GOOD_GAIN, margin=0.01).promote
    assert _decide(client, test_split, box_unet, None).code == "no_baseline_gain"


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_champion_is_refused_not_executed(mlflow_store, box_unet, test_split, tmp_path):
    marker = tmp_path / "pwned"
    evil = torch.nn.Linear(2, 2)
    evil.payload = _RunsCodeWhenUnpickled(marker)
    pickle.loads(pickle.dumps(evil.payload))
    assert marker.exists()  # the trap is real: unpickling runs code
    marker.unlink()
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(evil, name="m", registered_model_name=NAME, serialization_format="pickle",
                                        pip_requirements=["torch"])
    client = MlflowClient()
    client.set_registered_model_alias(NAME, CHAMPION, info.registered_model_version)
    assert not marker.exists()
    decision = _decide(client, test_split, box_unet)
    assert not decision.promote and decision.code == "champion_unloadable"
    assert "not a weights-only liversynth model" in decision.reason and "pytorch" in decision.reason
    assert not marker.exists()  # the pickle was never loaded


def test_champion_trained_on_the_test_split_is_not_rescored(mlflow_store, box_unet, test_split):
    register(box_unet, unet_spec(train_patients=("mri/t2", "ct/c0")))
    decision = _decide(MlflowClient(), test_split, box_unet)
    assert not decision.promote and decision.code == "test_not_disjoint" and "mri/t2" in decision.reason


def test_champion_is_rescored_paired(mlflow_store, box_unet, test_split):
    torch.manual_seed(1)
    register(build_unet(TINY).eval(), unet_spec(train_patients=("mri/other",)))  # an untrained champion
    client = MlflowClient()
    better = _decide(client, test_split, box_unet)
    assert better.promote and better.code == "beats_champion" and better.ci_low > 0
    register(box_unet, unet_spec(train_patients=("mri/other",)))  # now the good one is champion
    worse = _decide(client, test_split, build_unet(TINY).eval())
    assert not worse.promote and worse.code == "not_better"


def test_a_half_made_unit_is_completed_without_duplicates(mlflow_store, box_unet):
    client = MlflowClient()
    calls = {"decide": 0, "fail": True}

    def decide():
        calls["decide"] += 1
        return _first_gate_ok()

    def log(kind):
        def go():
            if kind == "ct2mri" and calls["fail"]:
                raise RuntimeError("killed while logging the generator")
            example = box_volume(0, (2, 40, 36))[0]
            return log_pyfunc(box_unet, unet_spec(), example, (1.0, 1.0), kind).model_uri
        return go

    members = [UnitMember(NAME, log("unet"), {"t": "1"}, lambda d: f"card {d.code}", "the unet"),
               UnitMember("liversynth-ct2mri", log("ct2mri"), {"t": "2"})]
    with mlflow.start_run():
        with pytest.raises(RuntimeError):
            register_unit(client, "unit-A", members, decide)
    assert alias_version(client, NAME, CHAMPION) is None  # nothing aliased half-way
    calls["fail"] = False
    with mlflow.start_run():
        versions, decision = register_unit(client, "unit-A", members, decide)
        again, _ = register_unit(client, "unit-A", members, decide)  # a rerun of a complete unit: no-op
    assert versions == again == {NAME: "1", "liversynth-ct2mri": "1"} and calls["decide"] == 1
    for name in versions:
        assert len(client.search_model_versions(f"name = '{name}'")) == 1
        assert str(alias_version(client, name, CHAMPION)) == str(alias_version(client, name, CHALLENGER)) == "1"
        tags = client.get_model_version(name, "1").tags
        assert tags[COMPLETE_TAG] == "true" and tags["gate.promote"] == "true" and "liversynth.unit_versions" in tags
    assert client.get_model_version(NAME, "1").description == "card first_beats_baseline"
    assert client.get_registered_model(NAME).description == "the unet"


def _first_gate_ok():
    from liversynth.tracking.registry import first_gate

    return first_gate(GOOD_GAIN, 0.0)


def test_first_run_with_the_real_only_unet_makes_it_champion(mlflow_store, box_unet, test_split):
    """The mix did not clear the margin (`supported_arm` picks real only): the real-only U-Net is the first
    champion, with the comparison as its reason; a missing gain is still a refusal."""
    from liversynth.tracking.registry import supported_arm

    low = {"arm": "mix", "baseline": "real_only", "mean": 0.01, "ci_low": -0.002, "ci_high": 0.02}
    assert supported_arm(low, 0.0) == "real_only" and supported_arm(GOOD_GAIN, 0.0) == "mix"
    assert supported_arm(GOOD_GAIN, 0.01) == "real_only" and supported_arm(None, 0.0) == "real_only"
    client = MlflowClient()
    decision = challenge_champion(client, NAME, test_split, per_patient_iou(box_unet, test_split),
                                  unet_spec().preprocessing(), low, margin=0.0, n_bootstrap=200, ci=0.95,
                                  baseline_arm=True)
    assert decision.promote and decision.code == "first_real_only"
    assert "CI low -0.0020 <= margin 0" in decision.reason and decision.ci_low == -0.002
    missing = challenge_champion(client, NAME, test_split, {}, unet_spec().preprocessing(), None, margin=0.0,
                                 n_bootstrap=200, ci=0.95, baseline_arm=True)
    assert not missing.promote and missing.code == "no_baseline_gain"

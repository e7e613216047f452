"""The champion gate, against a real MLflow registry (sqlite store in a temp dir)."""
import mlflow
import numpy as np
import torch
from mlflow.tracking import MlflowClient

from liversynth.evaluation.metrics import paired_bootstrap
from liversynth.tracking.registry import CHALLENGER, CHAMPION, alias_version, apply_decision, gate


def _register(name: str) -> str:
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(torch.nn.Linear(2, 1), name="m", registered_model_name=name,
                                        input_example=np.zeros((1, 2), np.float32))
    return info.registered_model_version


def test_gate_rules():
    assert gate(None, 0.0).promote  # first model: nothing to beat
    better = paired_bootstrap(np.full(10, 0.03) + np.linspace(-0.01, 0.01, 10), 500, 0.95)
    worse = paired_bootstrap(np.full(10, -0.03) + np.linspace(-0.01, 0.01, 10), 500, 0.95)
    noisy = paired_bootstrap(np.linspace(-0.2, 0.25, 10), 500, 0.95)  # mean > 0, CI straddles 0
    assert gate(better, 0.0).promote and not gate(better, 0.05).promote
    assert not gate(worse, 0.0).promote
    assert noisy["mean"] > 0 and not gate(noisy, 0.0).promote


def test_champion_moves_only_behind_the_gate(mlflow_store):
    client = MlflowClient()
    v1 = _register("seg")
    apply_decision(client, "seg", v1, gate(None, 0.0))
    assert alias_version(client, "seg", CHAMPION) == v1 == alias_version(client, "seg", CHALLENGER)

    v2 = _register("seg")  # worse than v1: challenger only
    worse = gate(paired_bootstrap(np.full(8, -0.02), 200, 0.95), 0.0)
    apply_decision(client, "seg", v2, worse, {"test_iou": "0.5"})
    assert alias_version(client, "seg", CHAMPION) == v1 and alias_version(client, "seg", CHALLENGER) == v2
    tags = client.get_model_version("seg", v2).tags
    assert tags["gate.promote"] == "false" and tags["test_iou"] == "0.5" and "gate.ci_low" in tags

    v3 = _register("seg")  # clearly better: becomes champion
    better = gate(paired_bootstrap(np.full(8, 0.04) + np.linspace(-0.005, 0.005, 8), 200, 0.95), 0.01)
    apply_decision(client, "seg", v3, better)
    assert alias_version(client, "seg", CHAMPION) == v3
    assert client.get_model_version("seg", v3).tags["gate.promote"] == "true"


def test_cli_lineage_and_promote(mlflow_store, capsys):
    from liversynth.cli import main

    client = MlflowClient()
    v1 = _register("seg")
    apply_decision(client, "seg", v1, gate(None, 0.0), {"git_commit": "abc", "data_dvc_md5": "d1.dir"})
    v2 = _register("seg")
    apply_decision(client, "seg", v2, gate(paired_bootstrap(np.full(8, -0.02), 200, 0.95), 0.0))
    assert main(["--tracking-uri", mlflow_store, "lineage", "seg@champion"]) == 0
    out = capsys.readouterr().out
    assert "abc" in out and "d1.dir" in out and "gate.promote" in out
    assert main(["--tracking-uri", mlflow_store, "promote", "seg"]) == 1  # challenger failed its gate
    assert "did not pass the gate" in capsys.readouterr().err
    assert alias_version(client, "seg", CHAMPION) == v1
    assert main(["--tracking-uri", mlflow_store, "promote", "seg", "--force"]) == 0
    assert alias_version(client, "seg", CHAMPION) == v2
    assert client.get_model_version("seg", v2).tags["gate.manual_override"] == "true"

"""Every params profile (params-*.yaml, copied over params.yaml by `make run DATASET=...`) loads with
the strict config and holds every params key the DAGs declare: DVC fails a stage (after the stages
before it ran) on a declared key missing from params.yaml, even where the config has a default."""
from __future__ import annotations

from typing import Any

import pytest
import yaml

from liversynth.config import Params, load_yaml
from tests.conftest import REPO
from tests.test_dag import expand_stages

PROFILES = sorted(p.name for p in REPO.glob("params*.yaml")) + ["tests/tiny_params.yaml"]


def declared_keys() -> set[str]:
    """Every params key of dvc.yaml and study/dvc.yaml (foreach stages expanded), in params.yaml."""
    keys: set[str] = set()
    for dag in ("dvc.yaml", "study/dvc.yaml"):
        for stage in expand_stages(yaml.safe_load((REPO / dag).read_text())).values():
            for entry in stage.get("params", []):
                if isinstance(entry, dict):  # {other_file.yaml: [keys]}: only params.yaml's keys matter here
                    keys.update(k for f, ks in entry.items() if f == "params.yaml" for k in ks)
                else:
                    keys.add(str(entry))
    return keys


def _has(raw: Any, dotted: str) -> bool:
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_the_dags_declare_params() -> None:
    assert {"essnet.seeds", "study", "runtime"} <= declared_keys()


@pytest.mark.parametrize("name", PROFILES)
def test_profile_loads_and_has_every_declared_key(name: str) -> None:
    path = REPO / name
    Params.from_yaml(path)  # strict: raises naming the file and key
    raw = load_yaml(path.read_text())
    absent = sorted(k for k in declared_keys() if not _has(raw, k))
    assert not absent, f"{name}: missing params the DAGs declare: {absent}"

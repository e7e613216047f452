"""Load a registered liversynth model WITHOUT unpickling: its state_dict with `torch.load(weights_only=True)`
into the network its `spec.json` describes.

This is the load path of the register stage, `liversynth segment|translate` and the batch flow. A model
version in any other format (e.g. a pickled `mlflow.pytorch` model) is refused with `ModelLoadError`,
never executed.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from torch import nn

from liversynth.inference.spec import ModelSpec
from liversynth.models.weights import load_weights

__all__ = ["LoadedModel", "ModelLoadError", "SPEC_FILE", "WEIGHTS_FILE", "load_model_dir", "load_registered",
           "resolve_version"]

WEIGHTS_FILE, SPEC_FILE = "weights.pt", "spec.json"  # under the MLflow model's artifacts/


class ModelLoadError(RuntimeError):
    """A model that cannot (or must not) be loaded; the message says which and why."""


@dataclass(frozen=True)
class LoadedModel:
    module: nn.Module
    spec: ModelSpec
    uri: str
    name: str | None = None
    version: str | None = None


def resolve_version(client: MlflowClient, uri: str) -> tuple[str, str] | None:
    """(name, version) of `models:/NAME@ALIAS` or `models:/NAME/VERSION`; None for other URIs."""
    if not uri.startswith("models:/"):
        return None
    rest = uri.removeprefix("models:/")
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        name, _, version = rest.partition("/")
        return name, str(client.get_model_version(name, version).version)
    except MlflowException as err:
        raise ModelLoadError(f"{uri}: not in the registry ({err.message})") from err


def load_model_dir(folder: Path, uri: str, device: torch.device | None = None) -> tuple[nn.Module, ModelSpec]:
    """A downloaded MLflow model folder -> (network in eval mode, spec). Never unpickles."""
    weights, spec_path = folder / "artifacts" / WEIGHTS_FILE, folder / "artifacts" / SPEC_FILE
    if not (weights.is_file() and spec_path.is_file()):
        flavors = _flavors(folder)
        raise ModelLoadError(f"{uri}: not a weights-only liversynth model (no artifacts/{WEIGHTS_FILE} + "
                             f"{SPEC_FILE}; flavors: {', '.join(flavors) or 'none'}); a pickled model is "
                             f"never loaded")
    try:
        spec = ModelSpec.load(spec_path)
        return load_weights(spec.build_module(), weights, device), spec
    except Exception as err:  # noqa: BLE001  (weights_only refusal, shape mismatch, bad spec: one message)
        raise ModelLoadError(f"{uri}: cannot load its weights ({type(err).__name__}: {err})") from err


def load_registered(uri: str, tracking_uri: str | None = None, device: torch.device | None = None) -> LoadedModel:
    """`models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/...` or a local model folder -> LoadedModel."""
    if Path(uri).is_dir():
        module, spec = load_model_dir(Path(uri), uri, device)
        return LoadedModel(module, spec, uri)
    client = MlflowClient(tracking_uri) if tracking_uri else MlflowClient()
    resolved = resolve_version(client, uri)
    with tempfile.TemporaryDirectory(prefix="liversynth-model-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp,
                                                        tracking_uri=tracking_uri or mlflow.get_tracking_uri())
        except (MlflowException, OSError) as err:
            raise ModelLoadError(f"{uri}: cannot download it ({type(err).__name__}: {err})") from err
        module, spec = load_model_dir(Path(local), uri, device)
    name, version = resolved if resolved else (None, None)
    return LoadedModel(module, spec, uri, name, version)


def _flavors(folder: Path) -> list[str]:
    try:
        return sorted(yaml.safe_load((folder / "MLmodel").read_text()).get("flavors", {}))
    except (OSError, AttributeError, yaml.YAMLError):
        return []

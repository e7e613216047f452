"""The registered models as MLflow pyfunc models that carry their own preprocessing.

`predict` takes a batch of raw slices of one volume, (N, H, W) float32 in display orientation (HU for
the CT->MRI generator, scanner units for the MRI U-Net), with the params `row_spacing_mm` and
`col_spacing_mm`, and returns (N, H, W) on the same grid: a uint8 liver mask (U-Net) or MRI-like
intensities in [-1, 1] (generator). So `mlflow models serve -m models:/liversynth-unet@champion
--env-manager local -h 127.0.0.1` answers `POST /invocations {"inputs": [...], "params": {...}}`.

The model is logged as code (`pyfunc_entry.py`, MLflow's models-from-code), not as a pickled Python
object, and the network as a state_dict (`artifacts/weights.pt`) read with `weights_only=True`; the same
files are what `liversynth.inference.loading` reads without MLflow's pyfunc machinery at all.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PythonModel
from mlflow.types import Schema, TensorSpec
from torch import nn

from liversynth.config import PrepareConfig
from liversynth.inference.apply import segment_slices, translate_slices
from liversynth.inference.loading import SPEC_FILE, WEIGHTS_FILE
from liversynth.inference.spec import ModelSpec
from liversynth.models.weights import load_weights, save_weights

__all__ = ["ENTRY_FILE", "LiversynthModel", "log_pyfunc", "predict_slices", "raw_like"]

ENTRY_FILE = Path(__file__).with_name("pyfunc_entry.py")


def predict_slices(module: nn.Module, spec: ModelSpec, slices: np.ndarray,
                   params: dict[str, Any] | None = None) -> np.ndarray:
    params = params or {}
    spacing = (float(params.get("row_spacing_mm", 1.0)), float(params.get("col_spacing_mm", 1.0)))
    run = segment_slices if spec.kind == "unet" else translate_slices
    return run(module, spec, np.asarray(slices, np.float32), spacing)


class LiversynthModel(PythonModel):
    """Rebuilds the network from `spec.json`, loads `weights.pt` with weights_only=True."""

    def load_context(self, context):  # untyped: MLflow reads type hints here as a schema
        self.spec = ModelSpec.load(Path(context.artifacts["spec"]))
        self.module = load_weights(self.spec.build_module(), Path(context.artifacts["weights"]))

    # np.ndarray is a hint MLflow infers no schema from (the signature is set at log time); without a
    # hint MLflow warns "Add type hints to the `predict` method" on every import of this module.
    def predict(self, context, model_input: np.ndarray, params=None):
        return predict_slices(self.module, self.spec, np.asarray(model_input, np.float32), params)


def log_pyfunc(module: nn.Module, spec: ModelSpec, example: np.ndarray, spacing: tuple[float, float],
               name: str) -> ModelInfo:
    """Log `module` + `spec` as a pyfunc model in the active run (not registered: see tracking.registry).

    `example` is a small batch of raw slices of the model's input modality; its prediction gives the
    signature's output schema, and `spacing` the params' defaults."""
    params = {"row_spacing_mm": float(spacing[0]), "col_spacing_mm": float(spacing[1])}
    example = np.asarray(example, np.float32)
    output = predict_slices(module, spec, example, params)
    with tempfile.TemporaryDirectory() as tmp:
        weights, spec_path = Path(tmp) / WEIGHTS_FILE, Path(tmp) / SPEC_FILE
        save_weights(module, weights)
        spec.save(spec_path)
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(ENTRY_FILE),
            artifacts={"weights": str(weights), "spec": str(spec_path)},
            signature=_signature(output.dtype, params), input_example=(example, params),
            pip_requirements=_requirements())


def _signature(output_dtype: np.dtype, params: dict[str, float]) -> ModelSignature:
    """(N, H, W) float32 slices in, (N, H, W) out, any N, H, W; the spacing params with defaults."""
    def schema(dtype: np.dtype) -> Schema:
        return Schema([TensorSpec(np.dtype(dtype), (-1, -1, -1))])

    return ModelSignature(schema(np.dtype(np.float32)), schema(output_dtype),
                          infer_signature(None, None, params=params).params)


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "torch", "monai", "numpy", "nibabel", "pydicom")]


def raw_like(images: np.ndarray, modality: str, cfg: PrepareConfig) -> np.ndarray:
    """Prepared slices (N, 1, S, S) in [-1, 1] back to raw-looking (N, S, S) input for an input example:
    CT in HU (the inverse of the HU window), MRI in arbitrary scanner units (0-1000)."""
    x = np.asarray(images, np.float32).reshape(len(images), *np.shape(images)[-2:])
    if modality == "ct":
        lo, hi = cfg.ct_window
        return (lo + (x + 1.0) / 2.0 * (hi - lo)).astype(np.float32)
    return ((x + 1.0) * 500.0).astype(np.float32)

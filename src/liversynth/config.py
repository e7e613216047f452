"""Typed view of params.yaml: loaded once, passed down; unknown or missing keys are errors."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DataConfig", "EssNetConfig", "EvaluateConfig", "MlflowConfig", "Params", "PhantomConfig",
    "PrepareConfig", "RegisterConfig", "RuntimeConfig", "SynthesizeConfig", "TuneConfig", "UNetConfig", "ValidateConfig"
]


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "phantom"
    raw_dir: str = "data/raw"
    # Raw mask value meaning liver per cohort: one value, or an inclusive [low, high] range.
    liver_label: dict[str, int | list[int]] = field(default_factory=lambda: {"ct": 1, "mri": 1})
    # Raw mask values allowed per cohort (values and [low, high] ranges); a cohort not listed is
    # not checked. Anything else in a mask is an error, not silently background.
    label_values: dict[str, list[int | list[int]]] = field(default_factory=dict)
    # In-plane pixel size (mm) to resample to before prepare crops/pads to image_size pixels;
    # None keeps each scan's own pixels and only resizes (the phantom is already on one grid).
    spacing_mm: float | None = None
    manifest: str | None = None  # optional split assignment (JSON/CSV), paths relative to raw_dir
    mr_sequence: str = "T2SPIR"  # CHAOS only: T2SPIR, T1DUAL/InPhase or T1DUAL/OutPhase


@dataclass(frozen=True)
class RuntimeConfig:
    # Fixed, not "all cores": float results depend on the thread count (see liversynth.runtime.settings).
    threads: int = 2
    interop_threads: int = 1
    deterministic: bool = True


@dataclass(frozen=True)
class PhantomConfig:
    seed: int = 0
    n_ct: int = 20
    n_mri: int = 12
    size: int = 64
    slices: int = 16
    spacing_mm: float = 6.0
    # How far the MRI cohort's anatomy and scans depart from the CT cohort's (0 = same distribution):
    # slice range, field of view, body position, liver size, lesions (liversynth.data.phantom.CohortShift).
    mri_shift: float = 0.0


@dataclass(frozen=True)
class PrepareConfig:
    image_size: int = 64
    ct_window: tuple[float, float] = (-250.0, 350.0)
    mri_percentiles: tuple[float, float] = (0.5, 99.5)
    mri_splits: dict[str, int] = field(
        default_factory=lambda: {"train": 2, "unlabelled": 2, "val": 3, "test": 5}
    )
    split_seed: int = 0


@dataclass(frozen=True)
class ValidateConfig:
    min_slices: dict[str, int] = field(default_factory=dict)
    min_liver_fraction: float = 0.25


@dataclass(frozen=True)
class EssNetConfig:
    steps: int = 500
    batch_size: int = 4
    ngf: int = 24
    n_blocks: int = 6
    ndf: int = 32
    seg_channels: tuple[int, ...] = (16, 32, 64)
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_cycle: float = 10.0
    lambda_seg: float = 1.0
    pool_size: int = 50
    checkpoint_every: int = 100


@dataclass(frozen=True)
class SynthesizeConfig:
    batch_size: int = 32


@dataclass(frozen=True)
class UNetConfig:
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    eval_every: int = 100
    synthetic_anneal: float = 0.7  # synthetic share decays to 0 at this fraction of steps; 0 = constant


@dataclass(frozen=True)
class TuneConfig:
    ratios: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    seed: int = 0
    storage: str = "optuna/journal.log"


@dataclass(frozen=True)
class EvaluateConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    n_bootstrap: int = 2000
    ci: float = 0.95
    # Pre-registered before test is read: the primary comparison (arm minus baseline), its metric
    # (per-patient test IoU) and margin, and the sha256 of the test split it was registered for
    # ("" = none registered: the primary result is then reported as exploratory).
    primary_arm: str = "mix"
    primary_baseline: str = "real_only"
    primary_metric: str = "iou"
    primary_margin: float = 0.0
    test_split_sha256: str = ""


@dataclass(frozen=True)
class RegisterConfig:
    unet_name: str = "liversynth-unet"
    generator_name: str = "liversynth-ct2mri"
    margin: float = 0.0


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_dir: str = "mlruns/artifacts"
    experiment: str = "liversynth"


@dataclass(frozen=True)
class Params:
    seed: int = 0
    runtime: RuntimeConfig = RuntimeConfig()
    data: DataConfig = DataConfig()
    phantom: PhantomConfig = PhantomConfig()
    prepare: PrepareConfig = PrepareConfig()
    validate: ValidateConfig = ValidateConfig()
    essnet: EssNetConfig = EssNetConfig()
    synthesize: SynthesizeConfig = SynthesizeConfig()
    unet: UNetConfig = UNetConfig()
    tune: TuneConfig = TuneConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    register: RegisterConfig = RegisterConfig()
    mlflow: MlflowConfig = MlflowConfig()

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Params":
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: cannot read parameters: {err}") from err
        return _build(cls, raw, str(path))

    def section(self, name: str) -> dict[str, Any]:
        """One section as a flat dict, for logging as MLflow params."""
        return dataclasses.asdict(getattr(self, name))


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    values = {name: _coerce(hints[name], value, f"{where}:{name}") for name, value in raw.items()}
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_coerce(item, v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and not isinstance(value, hint):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value

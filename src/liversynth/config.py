"""Typed, validated view of params.yaml: loaded once, checked before anything runs, passed down.

Every section is a frozen pydantic model with `extra="forbid"` and strict types (a string "6" is
not a number), ranges on each value and cross-field rules (image size vs the networks' strides,
MRI splits vs the phantom cohort). A bad file fails in one line per problem, naming the file, the
dotted key, the value and the rule: `params.yaml: essnet.steps = -5: must be >= 1`.
Every float must be finite (`.inf`, `.nan` are refused), learning rates lie in (0, 1], and a number
written `1e9` (a string to YAML 1.1's resolver) reads as the number it is (`_ParamsLoader`).
`python -m liversynth.config params.yaml` checks a file (make run does, before `dvc repro`).
"""
from __future__ import annotations

import math
import re
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from liversynth.utils.param_errors import ParamsError, RuleError, format_errors

__all__ = [
    "DATASETS", "DataConfig", "Dataset", "EssNetConfig", "EvaluateConfig", "MlflowConfig", "Params", "PhantomConfig",
    "PrepareConfig", "RegisterConfig", "RuleError", "RuntimeConfig", "StudyConfig", "SynthesizeConfig", "TuneConfig",
    "UNetConfig", "ValidateConfig", "check_file", "load_yaml",
]

# The dataset names, listed here only: data.readers.registry maps each to its reader.
Dataset = Literal["phantom", "nifti", "dicom", "real-sample", "chaos"]
DATASETS: tuple[str, ...] = get_args(Dataset)
ESSNET_GENERATOR_STRIDE = 4  # two stride-2 convolutions down, two transposed ones up (models.generator)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value  # YAML gives lists; strict wants tuples


PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
LearningRate = Annotated[float, Field(gt=0, le=1)]  # above 1 every optimiser here diverges at once
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Pair = Annotated[tuple[float, float], BeforeValidator(_as_tuple)]
PosInts = Annotated[tuple[PosInt, ...], BeforeValidator(_as_tuple), Field(min_length=1)]


def _distinct(v: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(v)) != len(v):
        raise RuleError("values must be distinct")
    return v


Seeds = Annotated[tuple[int, ...], BeforeValidator(_as_tuple), Field(min_length=1), AfterValidator(_distinct)]


class _Section(BaseModel):
    # allow_inf_nan=False: `.inf`/`.nan` would pass every range check and surface as NaN weights.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# YAML 1.1 (PyYAML) reads a float only with a dot, so `1e9` or `1E-4` would be the string "1e9"; DVC's
# YAML 1.2 reader reads them as numbers. This loader agrees with DVC (YAML 1.2's float pattern).
_FLOAT_12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")


class _ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's float rule, so `lr: 1e-4` is a number as DVC reads it."""


_ParamsLoader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                         for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_ParamsLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))

# Integers (`12`) still resolve as ints: the int rule comes first in each list and is kept.


def load_yaml(text: str) -> Any:
    """Parse params YAML the way DVC does for numbers (`1e9` is 1000000000.0, not a string)."""
    return yaml.load(text, Loader=_ParamsLoader)  # noqa: S506 - a SafeLoader subclass


def _check_range(value: int | list[int]) -> int | list[int]:
    if isinstance(value, list) and (len(value) != 2 or value[0] > value[1]):
        raise RuleError("a range must be [low, high] with low <= high")
    return value


LabelRange = Annotated[int | list[int], AfterValidator(_check_range)]  # one value, or [low, high]


def _labels(**labels: int | list[int]) -> dict[str, int | list[int]]:
    return labels


class DataConfig(_Section):
    dataset: Dataset = "phantom"
    raw_dir: str = "data/raw"
    # Raw mask value meaning liver per cohort: one value, or an inclusive [low, high] range.
    liver_label: dict[str, LabelRange] = Field(default_factory=lambda: _labels(ct=1, mri=1))
    # Raw mask values allowed per cohort (values and [low, high] ranges); a cohort not listed is
    # not checked. Anything else in a mask is an error, not silently background.
    label_values: dict[str, list[LabelRange]] = Field(default_factory=dict)
    # In-plane pixel size (mm) to resample to before prepare crops/pads to image_size pixels;
    # None keeps each scan's own pixels and only resizes (the phantom is already on one grid).
    spacing_mm: PosFloat | None = None
    manifest: str | None = None  # optional split assignment (JSON/CSV), paths relative to raw_dir
    mr_sequence: Literal["T2SPIR", "T1DUAL/InPhase", "T1DUAL/OutPhase"] = "T2SPIR"  # CHAOS only


class RuntimeConfig(_Section):
    # Fixed, not "all cores": float results depend on the thread count (see liversynth.runtime.settings).
    threads: PosInt = 1
    interop_threads: PosInt = 1
    deterministic: bool = True


class PhantomConfig(_Section):
    seed: int = 0
    n_ct: PosInt = 20
    n_mri: PosInt = 12
    size: Annotated[int, Field(ge=8)] = 64
    slices: PosInt = 16
    spacing_mm: PosFloat = 6.0
    # How far the MRI cohort's anatomy and scans depart from the CT cohort's (0 = same distribution):
    # slice range, field of view, body position, liver size, lesions (liversynth.data.phantom.CohortShift).
    mri_shift: Annotated[float, Field(ge=0, le=2)] = 0.0


SplitName = Literal["train", "unlabelled", "val", "test"]


def _splits(**counts: int) -> dict[SplitName, int]:
    return {k: counts[k] for k in ("train", "unlabelled", "val", "test")}


class PrepareConfig(_Section):
    image_size: Annotated[int, Field(ge=8)] = 64
    ct_window: Pair = (-250.0, 350.0)
    mri_percentiles: Pair = (0.5, 99.5)
    mri_splits: dict[SplitName, NonNegInt] = Field(
        default_factory=lambda: _splits(train=2, unlabelled=2, val=3, test=5))
    split_seed: int = 0

    @field_validator("ct_window")
    @classmethod
    def _window(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise RuleError("must be [low, high] with low < high")
        return v

    @field_validator("mri_percentiles")
    @classmethod
    def _percentiles(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= v[0] < v[1] <= 100.0:
            raise RuleError("must be [low, high] with 0 <= low < high <= 100")
        return v

    @field_validator("mri_splits")
    @classmethod
    def _splits(cls, v: dict[str, int]) -> dict[str, int]:
        for name in ("train", "val", "test"):
            if v.get(name, 0) < 1:
                raise RuleError(f"needs at least 1 MRI patient in {name!r}")
        return v


class ValidateConfig(_Section):
    min_slices: dict[str, NonNegInt] = Field(default_factory=dict)
    min_liver_fraction: Fraction = 0.25


class EssNetConfig(_Section):
    # One generator per seed and variant: generator training randomness enters the intervals.
    seeds: Seeds = (0,)
    steps: PosInt = 500
    batch_size: PosInt = 4
    ngf: PosInt = 24
    n_blocks: PosInt = 6
    ndf: PosInt = 32
    seg_channels: PosInts = (16, 32, 64)
    lr: LearningRate = 2e-4
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.5
    lambda_cycle: NonNegFloat = 10.0
    lambda_seg: NonNegFloat = 1.0
    pool_size: NonNegInt = 50
    checkpoint_every: PosInt = 100
    # Learning rate held until this fraction of `steps`, then linear to 0 (CycleGAN's schedule at 0.5);
    # 1.0 = constant.
    lr_decay_from: Fraction = 1.0
    # The segmentation loss enters every seg_every-th generator step (1 = every step, EssNet's recipe).
    seg_every: PosInt = 1

    @field_validator("seg_channels")
    @classmethod
    def _two_levels(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) < 2:
            raise RuleError("needs at least 2 levels (a U-Net)")
        return v


class SynthesizeConfig(_Section):
    batch_size: PosInt = 32


class UNetConfig(_Section):
    channels: PosInts = (16, 32, 64, 128)
    strides: PosInts = (2, 2, 2)
    num_res_units: NonNegInt = 1
    steps: PosInt = 300
    batch_size: PosInt = 16
    lr: LearningRate = 1e-3
    eval_every: PosInt = 100
    synthetic_anneal: Fraction = 0.7  # synthetic share decays to 0 at this fraction of steps; 0 = constant
    # Labelled real MRI patients the U-Nets train on: the first n of mri_train (None = all of them).
    labelled_patients: PosInt | None = None

    @model_validator(mode="after")
    def _levels(self) -> "UNetConfig":
        if len(self.strides) != len(self.channels) - 1:
            raise RuleError(f"needs len(channels) - 1 = {len(self.channels) - 1} entries (one per level below "
                            "the first)", "strides", self.strides)
        return self


class TuneConfig(_Section):
    ratios: Annotated[tuple[NonNegFloat, ...], BeforeValidator(_as_tuple), Field(min_length=1)] = (
        0.0, 0.5, 1.0, 2.0, 4.0)
    # Learning rates tried by every tuned arm (empty: unet.lr only). The real-only baseline gets the
    # same number of trials as the mix: lrs x baseline_steps against lrs x the non-zero ratios.
    lrs: Annotated[tuple[LearningRate, ...], BeforeValidator(_as_tuple)] = ()
    baseline_steps: Annotated[tuple[PosInt, ...], BeforeValidator(_as_tuple)] = ()
    seed: int = 0
    storage: Annotated[str, Field(min_length=1)] = "optuna/journal.log"

    @field_validator("ratios")
    @classmethod
    def _finite(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(r) for r in v):
            raise RuleError("every ratio must be finite")
        return v

    @model_validator(mode="after")
    def _same_budget(self) -> "TuneConfig":
        mixes = len({r for r in self.ratios if r > 0})
        if self.baseline_steps and len(self.baseline_steps) != mixes:
            raise RuleError(f"needs one entry per non-zero ratio ({mixes}), so the real-only baseline gets as "
                            "many trials as the mix", "baseline_steps", self.baseline_steps)
        return self


class StudyConfig(_Section):
    # The study (study/dvc.yaml, `make study`): every arm retrained for each number of labelled patients.
    labelled_patients: Annotated[tuple[PosInt, ...], BeforeValidator(_as_tuple), AfterValidator(_distinct)] = ()


ArmName = Literal["real_only", "mix", "mix_cyclegan", "mix_ct", "mix_histmatch", "synthetic_only", "atlas"]


class EvaluateConfig(_Section):
    seeds: Annotated[tuple[int, ...], BeforeValidator(_as_tuple), Field(min_length=1)] = (0, 1, 2)  # U-Net seeds
    n_bootstrap: PosInt = 2000
    ci: Annotated[float, Field(gt=0, lt=1)] = 0.95
    # Pre-registered before test is read: the primary comparison (arm minus baseline), its metric
    # (per-patient test IoU) and margin, and the sha256 of the test split it was registered for
    # ("" = none registered: the primary result is then reported as exploratory).
    primary_arm: ArmName = "mix"
    primary_baseline: ArmName = "real_only"
    primary_metric: Literal["iou", "dice"] = "iou"
    primary_margin: NonNegFloat = 0.0
    test_split_sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""
    # Pre-registered: a generator has converged when its SSIM against the oracle rises by less than this per
    # 1000 steps over the last quarter of training (phantom only; liversynth.evaluation.ceiling).
    converged_ssim_slope: NonNegFloat = 0.02

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v):
            raise RuleError("seeds must be distinct")
        return v

    @model_validator(mode="after")
    def _primary_differs(self) -> "EvaluateConfig":
        if self.primary_arm == self.primary_baseline:
            raise RuleError("primary_arm and primary_baseline must differ")
        return self


class RegisterConfig(_Section):
    unet_name: Annotated[str, Field(min_length=1)] = "liversynth-unet"
    generator_name: Annotated[str, Field(min_length=1)] = "liversynth-ct2mri"
    margin: float = 0.0


class MlflowConfig(_Section):
    tracking_uri: Annotated[str, Field(min_length=1)] = "sqlite:///mlruns/mlflow.db"
    artifact_dir: str = "mlruns/artifacts"
    experiment: Annotated[str, Field(min_length=1)] = "liversynth"


# `validate` and `register` shadow BaseModel's deprecated classmethods of those names, as intended.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Field name .* shadows an attribute", category=UserWarning)

    class Params(_Section):
        seed: int = 0
        runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
        data: DataConfig = Field(default_factory=DataConfig)
        phantom: PhantomConfig = Field(default_factory=PhantomConfig)
        prepare: PrepareConfig = Field(default_factory=PrepareConfig)
        validate: ValidateConfig = Field(default_factory=ValidateConfig)  # type: ignore[assignment]
        essnet: EssNetConfig = Field(default_factory=EssNetConfig)
        synthesize: SynthesizeConfig = Field(default_factory=SynthesizeConfig)
        unet: UNetConfig = Field(default_factory=UNetConfig)
        tune: TuneConfig = Field(default_factory=TuneConfig)
        evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
        register: RegisterConfig = Field(default_factory=RegisterConfig)
        study: StudyConfig = Field(default_factory=StudyConfig)
        mlflow: MlflowConfig = Field(default_factory=MlflowConfig)

        @model_validator(mode="after")
        def _cross_field(self) -> "Params":
            size = self.prepare.image_size
            for factor, why in ((math.prod(self.unet.strides), "the U-Net's total stride, product of unet.strides"),
                                (ESSNET_GENERATOR_STRIDE, "the EssNet generator's downsampling"),
                                (2 ** (len(self.essnet.seg_channels) - 1),
                                 "the EssNet segmenter's total stride, 2**(len(essnet.seg_channels) - 1)")):
                if size % factor:
                    raise RuleError(f"must be divisible by {factor} ({why})", "prepare.image_size", size)
            gens, unets = len(self.essnet.seeds), len(self.evaluate.seeds)
            if gens not in (1, unets):
                raise RuleError(f"needs 1 or len(evaluate.seeds) = {unets} entries: U-Net seed i trains on "
                                "generator seed i", "essnet.seeds", self.essnet.seeds)
            labelled = self.prepare.mri_splits.get("train", 0)
            for key, counts in (("unet.labelled_patients", (self.unet.labelled_patients or 0,)),
                                ("study.labelled_patients", self.study.labelled_patients)):
                if max(counts, default=0) > labelled:
                    raise RuleError(f"asks for more labelled patients than prepare.mri_splits.train = {labelled}",
                                    key, counts if key.startswith("study") else counts[0])
            if self.data.dataset == "phantom":
                wanted = sum(self.prepare.mri_splits.values())
                if wanted > self.phantom.n_mri:
                    raise RuleError(f"asks for {wanted} MRI patients but the phantom cohort has phantom.n_mri = "
                                    f"{self.phantom.n_mri}", "prepare.mri_splits", self.prepare.mri_splits)
                if size > self.phantom.size:
                    raise RuleError(f"must be <= phantom.size = {self.phantom.size} (upsampling the phantom adds "
                                    "nothing)", "prepare.image_size", size)
            return self

        @classmethod
        def from_yaml(cls, path: str | Path) -> "Params":
            path = Path(path)
            try:
                raw = load_yaml(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as err:
                raise ParamsError(f"{path}: cannot read parameters: {err}") from err
            if not isinstance(raw, dict):
                raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
            try:
                return cls.model_validate(raw)
            except ValidationError as err:
                raise ParamsError("\n".join(format_errors(err, raw, str(path), cls))) from None

        def section(self, name: str) -> dict[str, Any]:
            """One section as a flat dict, for logging as MLflow params."""
            return dict(getattr(self, name).model_dump())


def check_file(path: str | Path) -> Params:
    """Load and validate a params file (raises ValueError with one line per problem)."""
    return Params.from_yaml(path)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "params.yaml"
    try:
        check_file(target)
    except ValueError as error:
        sys.exit(str(error))
    print(f"{target}: ok")

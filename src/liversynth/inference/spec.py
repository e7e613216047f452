"""What a registered model needs besides its weights: which network, which preprocessing, which data.

A `ModelSpec` travels with the weights (as `spec.json` beside `weights.pt` in the MLflow model), so
any user can rebuild the network with `build_module` and load the state_dict with
`torch.load(weights_only=True)`, and apply exactly the resampling and normalisation `prepare` applied.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from liversynth.config import EssNetConfig, PrepareConfig, UNetConfig
from liversynth.models.generator import ResnetGenerator
from liversynth.models.unet import build_unet

__all__ = ["KINDS", "ModelSpec", "SPEC_VERSION"]

KINDS = ("unet", "ct2mri")  # liver segmenter (MRI in, mask out) and CT->MRI generator (CT in, MRI-like out)
SPEC_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    modality: str  # the modality the network takes: "mri" for the U-Net, "ct" for the generator
    image_size: int
    ct_window: tuple[float, float]
    mri_percentiles: tuple[float, float]
    spacing_mm: float | None  # None: slices were only resized to image_size, never resampled
    network: dict[str, Any]  # UNetConfig fields (unet) or {"ngf", "n_blocks"} (ct2mri)
    train_patients: tuple[str, ...] = ()  # "<modality>/<patient>" ids of every patient it learned from
    test_split_hash: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model spec: unknown kind {self.kind!r}; known: {KINDS}")

    @classmethod
    def for_unet(cls, prepare: PrepareConfig, spacing_mm: float | None, unet: UNetConfig, **kw: Any) -> ModelSpec:
        return cls("unet", "mri", prepare.image_size, _pair(prepare.ct_window), _pair(prepare.mri_percentiles),
                   spacing_mm, unet.model_dump(), **kw)

    @classmethod
    def for_generator(cls, prepare: PrepareConfig, spacing_mm: float | None, essnet: EssNetConfig,
                      **kw: Any) -> ModelSpec:
        return cls("ct2mri", "ct", prepare.image_size, _pair(prepare.ct_window), _pair(prepare.mri_percentiles),
                   spacing_mm, {"ngf": essnet.ngf, "n_blocks": essnet.n_blocks}, **kw)

    @property
    def prepare(self) -> PrepareConfig:
        return PrepareConfig(image_size=self.image_size, ct_window=self.ct_window,
                             mri_percentiles=self.mri_percentiles)

    def preprocessing(self) -> dict[str, Any]:
        """The part that must match for two models to be scored on the same prepared slices."""
        return {"modality": self.modality, "image_size": self.image_size, "ct_window": list(self.ct_window),
                "mri_percentiles": list(self.mri_percentiles), "spacing_mm": self.spacing_mm}

    def build_module(self) -> nn.Module:
        """The untrained network this spec describes (load the weights into it)."""
        if self.kind == "unet":
            fields = set(UNetConfig.model_fields)
            kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                      for k, v in self.network.items() if k in fields}
            cfg = UNetConfig(**kwargs)
            return build_unet(cfg)
        return ResnetGenerator(1, 1, int(self.network["ngf"]), int(self.network["n_blocks"]))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def save(self, path: Path) -> Path:
        Path(path).write_text(self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> ModelSpec:
        try:
            raw = json.loads(Path(path).read_text())
            raw["ct_window"], raw["mri_percentiles"] = tuple(raw["ct_window"]), tuple(raw["mri_percentiles"])
            raw["train_patients"] = tuple(raw.get("train_patients", ()))
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a liversynth model spec ({type(err).__name__}: {err})") from err


def _pair(values: Any) -> tuple[float, float]:
    lo, hi = values
    return float(lo), float(hi)

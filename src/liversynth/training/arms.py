"""The arms of the benchmark: what each U-Net is trained on. All share seeds, steps, augmentation and
the mixing ratio tuned for EssNet on validation, so differences come from the training data alone.

Controls say what the method adds: raw CT mixed in (no translation), histogram-matched CT mixed in
(intensities only), plain CycleGAN synthetic (no segmentation loss), synthetic MRI alone (no real
MRI), and, evaluated without training, the image-free CT-label atlas (liversynth.evaluation.atlas).

The oracle arms (phantom only, data/oracle.py) replace the translator by a perfect one, each CT
patient's own anatomy rendered as MRI: `mix_oracle` - `real_only` is the ceiling of what any translator
can add on this benchmark, and each translator's gain is read as a share of it.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ARMS", "ATLAS", "Arm", "arm", "arm_labels", "unet_arms"]


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    # extra slices: "essnet", "cyclegan" (synthetic MRI), "ct", "histmatch", "oracle" (phantom only)
    source: str | None = None
    real: bool = True  # False: the source alone, no real MRI


ARMS = (
    Arm("real_only", "real MRI only"),
    Arm("mix", "real + EssNet synthetic", "essnet"),
    Arm("mix_cyclegan", "real + CycleGAN synthetic", "cyclegan"),
    Arm("mix_ct", "real + raw CT (no translation)", "ct"),
    Arm("mix_histmatch", "real + histogram-matched CT", "histmatch"),
    Arm("synthetic_only", "EssNet synthetic only", "essnet", real=False),
    Arm("mix_oracle", "real + oracle translation (phantom ceiling)", "oracle"),
    Arm("oracle_only", "oracle translation only", "oracle", real=False),
)
ATLAS = Arm("atlas", "CT-label atlas (no image)")


def arm(name: str) -> Arm:
    """The trained arm called `name`."""
    found = [a for a in ARMS if a.name == name]
    if not found:
        raise ValueError(f"unknown arm {name!r}; the arms are {[a.name for a in ARMS]}")
    return found[0]


def unet_arms(ratio: float, oracle: bool = False) -> dict[str, tuple[Arm, float]]:
    """arm name -> (arm, mixing ratio); a source-only arm trains on its source as if it were real. The
    oracle arms only with `oracle` (the dataset has an oracle: the phantom)."""
    return {a.name: (a, ratio if (a.source and a.real) else 0.0) for a in ARMS
            if oracle or a.source != "oracle"}


def arm_labels() -> dict[str, str]:
    return {a.name: a.label for a in (*ARMS, ATLAS)}

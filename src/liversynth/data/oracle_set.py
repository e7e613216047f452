"""The oracle translation as stored data: its slices with a tissue map, on disk in data/oracle/.

Apart from data/oracle.py, which renders it, so that what reads the oracle (EssNet training's fidelity
at checkpoints, train_unet's oracle arms) does not depend on the phantom's rendering or `prepare` code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liversynth.data.slice_set import SliceSet
from liversynth.utils.files import write_atomic_dir

__all__ = ["OracleSlices", "load_oracle", "oracle_absent_reason", "save_oracle"]

_INFO = "oracle.json"


@dataclass(frozen=True)
class OracleSlices:
    """The oracle as slices: a SliceSet's arrays plus the phantom tissue class of every pixel."""

    images: np.ndarray  # float32 (N, 1, H, W) in [-1, 1], normalised like prepared MRI
    labels: np.ndarray  # uint8 (N, H, W), 1 = liver: the CT patient's own label
    tissue: np.ndarray  # uint8 (N, H, W), phantom Tissue values on the same grid
    patients: np.ndarray  # str (N,), the CT patient ids

    def slice_set(self) -> SliceSet:
        return SliceSet(self.images, self.labels, self.patients)

    def select(self, index: np.ndarray) -> "OracleSlices":
        return OracleSlices(self.images[index], self.labels[index], self.tissue[index], self.patients[index])

    def __len__(self) -> int:
        return len(self.images)


def oracle_absent_reason(dataset: str) -> str | None:
    """Why a dataset has no oracle (None: it has one). Only the phantom knows each CT patient's anatomy."""
    if dataset == "phantom":
        return None
    return (f"data.dataset is {dataset!r}: real scans have no ground-truth MRI of a CT patient's own anatomy, "
            "so the oracle arms (mix_oracle, oracle_only), the ceiling and fidelity against it exist only on "
            "the built-in phantom")


def save_oracle(folder: Path, oracle: OracleSlices | None, reason: str | None = None) -> None:
    """Write the oracle atomically: a SliceSet (images, labels, patients) plus tissue.npy and oracle.json;
    for a dataset without one, only oracle.json saying why (`reason`)."""
    info = {"available": oracle is not None, "reason": reason,
            "slices": 0 if oracle is None else len(oracle),
            "patients": [] if oracle is None else list(dict.fromkeys(oracle.patients.tolist()))}

    def write(tmp: Path) -> None:
        if oracle is not None:
            np.save(tmp / "images.npy", np.ascontiguousarray(oracle.images, np.float32))
            np.save(tmp / "labels.npy", np.ascontiguousarray(oracle.labels, np.uint8))
            np.save(tmp / "patients.npy", np.asarray(oracle.patients, dtype="<U64"))
            np.save(tmp / "tissue.npy", np.ascontiguousarray(oracle.tissue, np.uint8))
        (tmp / _INFO).write_text(json.dumps(info, indent=2))

    write_atomic_dir(Path(folder), write)


def load_oracle(folder: Path) -> OracleSlices | None:
    """The oracle written by `save_oracle`, or None where the dataset has none."""
    folder = Path(folder)
    try:
        info = json.loads((folder / _INFO).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{folder / _INFO}: not a readable oracle: {err}") from err
    if not info["available"]:
        return None
    s = SliceSet.load(folder)
    tissue = np.load(folder / "tissue.npy", mmap_mode="r")
    if tissue.shape != s.labels.shape:
        raise ValueError(f"{folder}: tissue.npy {tissue.shape} does not match labels {s.labels.shape}")
    return OracleSlices(s.images, s.labels, tissue, s.patients)

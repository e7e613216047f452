"""The prepared-data format every stage after `prepare` reads: one folder of .npy arrays per split.

A split folder holds `images.npy` float32 (N, 1, H, W) in [-1, 1], `labels.npy` uint8 (N, H, W)
with 1 = liver, and `patients.npy` (N,) patient ids. Arrays are memory-mapped on load so peak memory
does not grow with the number of patients.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from liversynth.utils.files import write_atomic_dir

__all__ = ["BODY_THRESHOLD", "SPLITS", "SliceSet", "first_patients", "split_sha256", "translation_mri"]

# Prepared images put background at exactly -1; anything above this is body (synthesis quality and
# the histogram-matched control both look at body pixels only).
BODY_THRESHOLD = -0.99
SPLITS = ("ct_train", "mri_train", "mri_unlabelled", "mri_val", "mri_test")


@dataclass(frozen=True)
class SliceSet:
    images: np.ndarray  # float32 (N, 1, H, W), values in [-1, 1]
    labels: np.ndarray  # uint8 (N, H, W), 1 = liver
    patients: np.ndarray  # str (N,)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(f"images must be (N, 1, H, W), got {self.images.shape}")
        if self.labels.shape != (n, *self.images.shape[2:]) or len(self.patients) != n:
            raise ValueError(
                f"images {self.images.shape}, labels {self.labels.shape} and "
                f"patients {self.patients.shape} disagree"
            )

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def empty(cls, size: int) -> "SliceSet":
        return cls(
            np.zeros((0, 1, size, size), np.float32),
            np.zeros((0, size, size), np.uint8),
            np.zeros((0,), "<U64"),
        )

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = True) -> "SliceSet":
        folder = Path(folder)
        mode: Literal["r"] | None = "r" if mmap else None
        try:
            return cls(
                np.load(folder / "images.npy", mmap_mode=mode),
                np.load(folder / "labels.npy", mmap_mode=mode),
                np.load(folder / "patients.npy"),
            )
        except (OSError, ValueError) as err:
            raise ValueError(f"{folder}: not a readable slice set: {err}") from err

    def save(self, folder: str | Path) -> None:
        """Write atomically: into a temporary sibling folder, then rename into place."""
        write_atomic_dir(Path(folder), lambda tmp: self._write(tmp))

    def _write(self, folder: Path) -> None:
        np.save(folder / "images.npy", np.ascontiguousarray(self.images, np.float32))
        np.save(folder / "labels.npy", np.ascontiguousarray(self.labels, np.uint8))
        np.save(folder / "patients.npy", np.asarray(self.patients, dtype="<U64"))

    def patient_ids(self) -> list[str]:
        return sorted(set(self.patients.tolist()))

    def select(self, mask: np.ndarray) -> "SliceSet":
        return SliceSet(self.images[mask], self.labels[mask], self.patients[mask])


def first_patients(slices: SliceSet, n: int | None) -> SliceSet:
    """The slices of the first n patients in id order (all of them for None): n labelled patients."""
    if n is None:
        return slices
    ids = slices.patient_ids()
    if n > len(ids):
        raise ValueError(f"asks for {n} labelled patients but the split has {len(ids)}")
    return slices.select(np.isin(slices.patients, ids[:n]))


def translation_mri(prepared: Path) -> np.ndarray:
    """Unlabelled and labelled-train MRI images: what the generators learn MRI from. EssNet never
    needs MRI labels, and the validation and test splits stay unseen."""
    parts = [np.asarray(SliceSet.load(Path(prepared) / s).images) for s in ("mri_train", "mri_unlabelled")]
    return np.concatenate([p for p in parts if len(p)])


def split_sha256(folder: Path) -> str:
    """Content hash of one prepared split (images, labels, patient ids): what a result was computed on."""
    h = hashlib.sha256()
    for name in ("images.npy", "labels.npy", "patients.npy"):
        with (Path(folder) / name).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()

"""Reading raw patient volumes into one in-memory form, whatever the on-disk dataset layout.

Every reader returns `Volume`s in display orientation: (Z, H, W) axial slices, z from inferior to
superior, rows anterior -> posterior, columns patient's right -> left (radiological convention), so
later stages never have to think about affines again.

Layouts, chosen with `liversynth.data.readers.reader_for(data.dataset)` (registry.py):

- "phantom", "nifti", "dicom", "real-sample" (`folder_reader.FolderReader`):
  `raw_dir/<ct|mri>/<patient>/` holding `image.nii[.gz]` or a DICOM series folder `image/`, plus
  `label.nii[.gz]` (a multi-label mask on the same grid, in any voxel order its affine states).
- "chaos" (`chaos.ChaosReader`): the CHAOS challenge folders, `CT/<id>/{DICOM_anon,Ground}` and
  `MR/<id>/<sequence>/{DICOM_anon,Ground}`, DICOM slices plus one PNG mask per slice.

Masks stay multi-label on disk; `liver_label` says which raw value (or [low, high] range) is liver
and `label_values` which raw values may occur at all. A new layout is one class satisfying `Reader`
(build its `Volume` with `assemble_volume`, which does the shared checks) plus one entry in
registry.py. Every problem raises `RawDataError` naming the offending file and what is wrong.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import nibabel as nib
import numpy as np

from liversynth.utils.stage_errors import StageError

__all__ = [
    "AFFINE_ATOL_MM", "LabelSpec", "MODALITIES", "RawDataError", "Reader", "Volume", "assemble_volume",
    "canonical_affine", "check_label_values", "check_modality", "display_spacing", "from_display", "label_mask",
    "label_range", "require_liver", "to_display"
]

MODALITIES = ("ct", "mri")
# float32 headers and resampling tools round affines; 1e-3 mm is far below any real misregistration.
AFFINE_ATOL_MM = 1e-3

# One raw mask value, or an inclusive [low, high] range of them (CHAOS MR liver is 55-70).
LabelSpec = int | Sequence[int]


class RawDataError(StageError, ValueError):
    """A raw file or folder that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Volume:
    patient: str
    modality: str
    image: np.ndarray  # float32 (Z, H, W), display orientation
    label: np.ndarray  # uint8 (Z, H, W), 1 = liver, 0 = anything else
    spacing: tuple[float, float, float]  # mm along (z, row, col)
    source: Path  # the patient's folder (or file) it was read from
    label_source: Path | None = None  # the mask file (or folder of masks), for error messages


class Reader(Protocol):
    def list_patients(self, raw_dir: Path, modality: str) -> list[str]: ...

    def patient_dir(self, raw_dir: Path, modality: str, patient: str) -> Path: ...

    def read_patient(self, raw_dir: Path, modality: str, patient: str, liver_label: LabelSpec,
                     label_values: Sequence[LabelSpec] | None = None) -> Volume: ...


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {MODALITIES}")
    return modality


def label_range(spec: LabelSpec, where: str = "data.liver_label") -> tuple[int, int]:
    """A LabelSpec as an inclusive (low, high) range."""
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return int(spec), int(spec)
    if (isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in spec)
            and spec[0] <= spec[1]):
        return int(spec[0]), int(spec[1])
    raise ValueError(f"{where}: {spec!r} is neither an integer label nor a [low, high] range")


def label_mask(labels: np.ndarray, spec: LabelSpec) -> np.ndarray:
    low, high = label_range(spec)
    return (labels >= low) & (labels <= high)


def check_label_values(labels: np.ndarray, path: Path, allowed: Sequence[LabelSpec] | None,
                       modality: str) -> None:
    """Integers only, and (when declared) only the declared values: a stray value is a wrong file
    or a wrong label map, and silently calling it background would corrupt training."""
    if not np.all(labels == np.round(labels)):
        raise RawDataError(f"{path}: label values are not integers "
                           f"(is this a probability map or an interpolated mask?)")
    if allowed is None:
        return
    ranges = [label_range(v, f"data.label_values.{modality}") for v in allowed]
    values = np.unique(labels)
    ok = np.zeros(values.shape, bool)
    for low, high in ranges:
        ok |= (values >= low) & (values <= high)
    if not ok.all():
        bad = [int(v) for v in values[~ok][:10]]
        raise RawDataError(f"{path}: label values {bad} are outside the declared set {list(allowed)} "
                           f"(data.label_values.{modality}); wrong mask file or wrong declaration?")


def assemble_volume(*, patient: str, modality: str, source: Path,
                    image: np.ndarray, image_affine: np.ndarray, image_path: Path,
                    label: np.ndarray, label_affine: np.ndarray, label_path: Path,
                    liver_label: LabelSpec, label_values: Sequence[LabelSpec] | None) -> Volume:
    """The checks every layout shares, then display orientation and the binary liver mask.

    Arrays are in NIfTI axis order (i, j, k) with voxel -> RAS mm affines. Image and mask may be
    stored in different voxel orders (e.g. a DICOM series and a NIfTI mask): they must describe the
    same grid once both are brought to canonical orientation.
    """
    image_display, label_display = to_display(image_affine, image), to_display(label_affine, label)
    if image_display.shape != label_display.shape:
        raise RawDataError(f"{label_path}: shape {label_display.shape} (z, rows, cols) does not match "
                           f"image {image_path.name} shape {image_display.shape}")
    if not np.allclose(canonical_affine(image_affine, image.shape),
                       canonical_affine(label_affine, label.shape), rtol=0, atol=AFFINE_ATOL_MM):
        raise RawDataError(f"{label_path}: affine differs from image {image_path.name}'s; "
                           f"the mask is not on the image grid")
    if not np.isfinite(image).all():
        raise RawDataError(f"{image_path}: contains {np.count_nonzero(~np.isfinite(image))} "
                           f"NaN/Inf voxels")
    check_label_values(label, label_path, label_values, modality)
    return Volume(
        patient=patient,
        modality=modality,
        image=image_display.astype(np.float32),
        label=label_mask(label_display, liver_label).astype(np.uint8),
        spacing=display_spacing(image_affine),
        source=source,
        label_source=label_path,
    )


def require_liver(volume: Volume, liver_label: LabelSpec) -> None:
    """A labelled patient whose mask has no liver anywhere trains and scores nothing useful, and
    usually means a wrong `data.liver_label` or an empty export."""
    if not volume.label.any():
        raise RawDataError(f"{volume.label_source or volume.source}: no voxel has the liver label "
                           f"{liver_label!r} in any of its {volume.label.shape[0]} slices "
                           f"(empty mask, or wrong data.liver_label.{volume.modality}?)")


def canonical_affine(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The affine of the same grid reoriented to the closest canonical (RAS) voxel order."""
    ornt = nib.orientations.io_orientation(affine)
    return affine @ nib.orientations.inv_ornt_aff(ornt, shape[:3])


def display_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    sizes = nib.affines.voxel_sizes(affine)
    ras = [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(nib.orientations.io_orientation(affine)):
        ras[int(target)] = float(sizes[axis])
    return ras[2], ras[1], ras[0]


def to_display(affine: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Voxel array -> (Z, H, W) with z inferior->superior, rows anterior->posterior, columns
    patient's right->left, via the closest canonical (RAS) orientation of the affine."""
    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(data, ornt)
    # RAS array axes: x increases to the patient's right, y anteriorly: flip both for display.
    return np.ascontiguousarray(np.transpose(ras, (2, 1, 0))[:, ::-1, ::-1])


def from_display(affine: np.ndarray, display: np.ndarray) -> np.ndarray:
    """The inverse of `to_display`: a (Z, H, W) display array back in the voxel order of `affine`
    (e.g. a mask predicted on display slices, written on the input scan's own grid)."""
    ornt = nib.orientations.io_orientation(affine)
    ras = np.transpose(np.asarray(display)[:, ::-1, ::-1], (2, 1, 0))
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(tuple("RAS")), ornt)
    return np.ascontiguousarray(nib.orientations.apply_orientation(ras, back))

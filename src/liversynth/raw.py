"""Reading raw patient volumes into one in-memory form, whatever the on-disk dataset layout.

Every reader returns `Volume`s in display orientation: (Z, H, W) axial slices, z from inferior to
superior, rows anterior -> posterior, columns patient's right -> left (radiological convention), so
later stages never have to think about affines again.

Supported layouts, chosen with `reader_for(dataset)`:

- "nifti" (and "phantom", which writes it): `raw_dir/<modality>/<patient>/image.nii[.gz]` plus
  `label.nii[.gz]` on the same grid; `modality` is "ct" or "mri". Folders whose name starts with
  "." are ignored (they are in-progress atomic writes).

A new layout (e.g. CHAOS DICOM + PNG masks, or plain DICOM series) is one class satisfying `Reader`
plus one entry in `reader_for`; it should raise `RawDataError` naming the offending file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import nibabel as nib
import numpy as np

MODALITIES = ("ct", "mri")
# float32 headers and resampling tools round affines; 1e-3 mm is far below any real misregistration.
AFFINE_ATOL_MM = 1e-3


class RawDataError(ValueError):
    """A raw file or folder that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Volume:
    patient: str
    modality: str
    image: np.ndarray  # float32 (Z, H, W), display orientation
    label: np.ndarray  # uint8 (Z, H, W), 1 = liver, 0 = anything else
    spacing: tuple[float, float, float]  # mm along (z, row, col)
    source: Path  # the patient's folder (or file) it was read from


class Reader(Protocol):
    def list_patients(self, raw_dir: Path, modality: str) -> list[str]: ...

    def read_patient(self, raw_dir: Path, modality: str, patient: str, liver_label: int) -> Volume: ...


def reader_for(dataset: str) -> Reader:
    if dataset in ("phantom", "nifti"):
        return NiftiReader()
    raise ValueError(f"unknown dataset {dataset!r}; known: 'phantom', 'nifti'")


def list_patients(raw_dir: Path, modality: str, dataset: str = "nifti") -> list[str]:
    return reader_for(dataset).list_patients(Path(raw_dir), modality)


def read_patient(raw_dir: Path, modality: str, patient: str, liver_label: int,
                 dataset: str = "nifti") -> Volume:
    return reader_for(dataset).read_patient(Path(raw_dir), modality, patient, liver_label)


class NiftiReader:
    """`raw_dir/<modality>/<patient>/{image,label}.nii[.gz]`, any orientation the affine states."""

    def list_patients(self, raw_dir: Path, modality: str) -> list[str]:
        folder = Path(raw_dir) / _check_modality(modality)
        if not folder.is_dir():
            raise RawDataError(f"{folder}: modality folder is missing (expected one sub-folder "
                               f"per patient with image.nii.gz and label.nii.gz)")
        patients = sorted(p.name for p in folder.iterdir()
                          if p.is_dir() and not p.name.startswith("."))
        if not patients:
            raise RawDataError(f"{folder}: contains no patient folders")
        return patients

    def read_patient(self, raw_dir: Path, modality: str, patient: str, liver_label: int) -> Volume:
        folder = Path(raw_dir) / _check_modality(modality) / patient
        image_path, label_path = _find(folder, "image"), _find(folder, "label")
        image_img, image = _load(image_path)
        label_img, label = _load(label_path)
        if image.shape != label.shape:
            raise RawDataError(f"{label_path}: shape {label.shape} does not match image "
                               f"{image_path.name} shape {image.shape}")
        if not np.allclose(image_img.affine, label_img.affine, rtol=0, atol=AFFINE_ATOL_MM):
            raise RawDataError(f"{label_path}: affine differs from image {image_path.name}'s; "
                               f"the mask is not on the image grid")
        if not np.isfinite(image).all():
            raise RawDataError(f"{image_path}: contains {np.count_nonzero(~np.isfinite(image))} "
                               f"NaN/Inf voxels")
        if not np.all(label == np.round(label)):
            raise RawDataError(f"{label_path}: label values are not integers "
                               f"(is this a probability map or an interpolated mask?)")
        return Volume(
            patient=patient,
            modality=modality,
            image=_to_display(image_img, image).astype(np.float32),
            label=(_to_display(label_img, label) == liver_label).astype(np.uint8),
            spacing=_display_spacing(image_img.affine),
            source=folder,
        )


def _check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {MODALITIES}")
    return modality


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.nii.gz", f"{stem}.nii"):
        if (folder / name).is_file():
            return folder / name
    raise RawDataError(f"{folder / (stem + '.nii.gz')}: file is missing")


def _load(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load fully (nibabel is lazy, so truncation only shows when the data are read)."""
    try:
        img = nib.load(path)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise RawDataError(f"{path}: is a {type(img).__name__}, not NIfTI")
        data = np.asarray(img.dataobj)
    except RawDataError:
        raise
    except Exception as err:  # nibabel reports corruption as many unrelated exception types
        raise RawDataError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {err})") from err
    if data.ndim == 4 and data.shape[3] == 1:  # (X, Y, Z, 1) is a common harmless export quirk
        img, data = img.slicer[..., 0], data[..., 0]
    if data.ndim != 3:
        raise RawDataError(f"{path}: expected a 3D volume, got {data.ndim}D shape {data.shape}")
    return img, data


def _display_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    sizes = nib.affines.voxel_sizes(affine)
    ras = [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(nib.orientations.io_orientation(affine)):
        ras[int(target)] = float(sizes[axis])
    return ras[2], ras[1], ras[0]


def _to_display(img: nib.Nifti1Image, data: np.ndarray) -> np.ndarray:
    """Voxel array -> (Z, H, W) with z inferior->superior, rows anterior->posterior, columns
    patient's right->left, via the closest canonical (RAS) orientation of the affine."""
    ornt = nib.orientations.io_orientation(img.affine)
    ras = nib.orientations.apply_orientation(data, ornt)
    # RAS array axes: x increases to the patient's right, y anteriorly: flip both for display.
    return np.ascontiguousarray(np.transpose(ras, (2, 1, 0))[:, ::-1, ::-1])

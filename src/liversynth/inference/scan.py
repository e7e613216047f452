"""One new scan from disk, in the same display orientation `prepare` sees, and masks written back on its grid.

A scan is a NIfTI file, a DICOM series folder, a liversynth patient folder (`image.nii.gz` or
`image/`), or a CHAOS patient folder (`DICOM_anon/`, or `<sequence>/DICOM_anon[/<phase>]` for MR).
The readers' own loaders and checks are used (`load_nifti`, `read_dicom_series`), so every bad input
they refuse is refused here with the same message naming the file.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from liversynth.data.readers.base import RawDataError, display_spacing, from_display, to_display
from liversynth.data.readers.chaos import MR_SEQUENCES
from liversynth.data.readers.dicom_series import read_dicom_series
from liversynth.data.readers.folder import DICOM_IMAGE_DIR, load_nifti
from liversynth.utils.files import write_atomic_file

__all__ = ["Scan", "is_nifti", "read_scan", "scan_name", "write_on_grid"]


@dataclass(frozen=True)
class Scan:
    source: Path
    image: np.ndarray  # float32 (Z, H, W), display orientation (readers/base.py)
    spacing: tuple[float, float, float]  # mm along display (z, row, col)
    affine: np.ndarray  # voxel -> RAS mm of the scan as stored
    shape: tuple[int, int, int]  # voxel shape as stored

    @property
    def voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0


def is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def scan_name(path: Path) -> str:
    """A study's name: the file name without .nii[.gz], or the folder's name."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _series_folder(folder: Path, mr_sequence: str) -> Path | None:
    """The DICOM folder of a liversynth or CHAOS patient folder, or None if `folder` is a series itself."""
    sequence, _, phase = mr_sequence.partition("/")
    candidates = [folder / DICOM_IMAGE_DIR, folder / "DICOM_anon", folder / sequence / "DICOM_anon" / phase]
    candidates += [folder / s.split("/")[0] / "DICOM_anon" / s.partition("/")[2] for s in MR_SEQUENCES]
    return next((c for c in candidates if c.is_dir()), None)


def read_scan(path: Path, mr_sequence: str = "T2SPIR") -> Scan:
    """Read a scan in any supported form; RawDataError naming the file for anything unusable."""
    path = Path(path)
    if not path.exists():
        raise RawDataError(f"{path}: no such file or folder")
    if path.is_dir():
        nifti = next((path / n for n in ("image.nii.gz", "image.nii") if (path / n).is_file()), None)
        if nifti is not None:
            return read_scan(nifti)
        series = read_dicom_series(_series_folder(path, mr_sequence) or path)
        data: np.ndarray = series.voxels
        affine = series.affine
    elif is_nifti(path):
        img, data = load_nifti(path)
        affine = np.asarray(img.affine, float)
    else:
        raise RawDataError(f"{path}: not a NIfTI file (.nii/.nii.gz), a DICOM series folder or a patient folder")
    if not np.isfinite(data).all():
        raise RawDataError(f"{path}: contains {np.count_nonzero(~np.isfinite(data))} NaN/Inf voxels")
    if min(data.shape) < 1 or data.size == 0:
        raise RawDataError(f"{path}: empty volume of shape {data.shape}")
    return Scan(path, to_display(affine, data).astype(np.float32), display_spacing(affine), affine,
                tuple(int(n) for n in data.shape))  # type: ignore[arg-type]


def write_on_grid(scan: Scan, display: np.ndarray, out: Path, dtype: type = np.uint8) -> Path:
    """Write a display-orientation array as NIfTI on the scan's own grid (its shape and affine), atomically."""
    data: np.ndarray = from_display(scan.affine, display).astype(dtype)
    if data.shape != scan.shape:
        raise ValueError(f"{out}: result shape {data.shape} is not the scan's {scan.shape}")
    img = nib.Nifti1Image(data, scan.affine)
    img.header.set_xyzt_units("mm")
    raw = img.to_bytes()
    write_atomic_file(Path(out), gzip.compress(raw, compresslevel=6) if str(out).endswith(".gz") else raw)
    return Path(out)

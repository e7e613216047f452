"""One folder of single-frame DICOM slices -> a 3D voxel array with its affine.

Slices are ordered by their position along the slice normal (ImagePositionPatient projected on
the cross product of the ImageOrientationPatient cosines), never by file name: exporters name files
by acquisition or instance number, which need not follow anatomy. Compressed transfer syntaxes are
decoded by pydicom's pixel handlers (JPEG 2000 through Pillow with OpenJPEG, as installed here).

Every problem raises `RawDataError` naming the file (or folder) and what is wrong with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from liversynth.data.readers.base import RawDataError

__all__ = ["COSINE_ATOL", "DicomSeries", "POSITION_ATOL_MM", "STEP_RTOL", "dicom_files", "read_dicom_series"]

# Positions and cosines come from decimal strings; 1e-3 mm / 1e-4 are far below any real offset.
POSITION_ATOL_MM = 1e-3
COSINE_ATOL = 1e-4
# A gap this much larger (or smaller) than the typical slice step means a missing or stray slice.
STEP_RTOL = 0.2
_GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
# DICOM patient coordinates are LPS; NIfTI affines (and raw.py) use RAS.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class DicomSeries:
    voxels: np.ndarray  # float32 (columns, rows, slices): NIfTI axis order, rescaled (HU for CT)
    affine: np.ndarray  # voxel (i = column, j = row, k = slice) -> RAS mm
    files: tuple[Path, ...]  # the slice files, in voxel k order
    folder: Path


@dataclass(frozen=True)
class _Slice:
    path: Path
    dataset: pydicom.Dataset
    position: np.ndarray  # ImagePositionPatient, LPS mm
    cosines: np.ndarray  # ImageOrientationPatient: row direction, then column direction
    spacing: tuple[float, float]  # PixelSpacing: between rows, between columns


def dicom_files(folder: Path) -> list[Path]:
    """Every visible regular file: DICOM files often have no extension, so none is assumed."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_dicom_series(folder: Path) -> DicomSeries:
    folder = Path(folder)
    if not folder.is_dir():
        raise RawDataError(f"{folder}: DICOM series folder is missing")
    paths = dicom_files(folder)
    if not paths:
        raise RawDataError(f"{folder}: contains no DICOM files")
    slices = [_read_header(p) for p in paths]
    _check_one_series(folder, slices)
    normal = np.cross(slices[0].cosines[:3], slices[0].cosines[3:])
    slices.sort(key=lambda s: float(s.position @ normal))
    if len(slices) < 2:
        raise RawDataError(f"{folder}: holds a single slice ({paths[0].name}); expected a 3D series")
    step = _slice_step(folder, slices, normal)
    planes = np.stack([_pixels(s) for s in slices])  # (slices, rows, columns)
    (row_cos, col_cos), (d_row, d_col) = slices[0].cosines.reshape(2, 3), slices[0].spacing
    affine = np.eye(4)
    affine[:3, 0] = row_cos * d_col  # column index i runs along the row direction
    affine[:3, 1] = col_cos * d_row
    affine[:3, 2] = step
    affine[:3, 3] = slices[0].position
    return DicomSeries(
        voxels=np.ascontiguousarray(np.transpose(planes, (2, 1, 0))),
        affine=_LPS_TO_RAS @ affine,
        files=tuple(s.path for s in slices),
        folder=folder,
    )


def _read_header(path: Path) -> _Slice:
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as err:
        raise RawDataError(f"{path}: not a DICOM file ({err})") from err
    except Exception as err:  # truncated or corrupt files surface as many exception types
        raise RawDataError(f"{path}: unreadable DICOM ({type(err).__name__}: {err})") from err
    if "PixelData" not in ds:  # pydicom stops quietly at a cut, so a short file reads as a partial one
        raise RawDataError(f"{path}: DICOM has no pixel data (a truncated file, or not an image slice)")
    missing = [name for name in _GEOMETRY if name not in ds]
    if missing:
        raise RawDataError(f"{path}: DICOM lacks {', '.join(missing)}, needed to place the slice in 3D")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise RawDataError(f"{path}: multi-frame DICOM ({ds.NumberOfFrames} frames) is not supported; "
                           f"export one file per slice")
    try:
        position = np.asarray(ds.ImagePositionPatient, float)
        cosines = np.asarray(ds.ImageOrientationPatient, float)
        spacing = tuple(float(v) for v in ds.PixelSpacing)
    except (TypeError, ValueError) as err:
        raise RawDataError(f"{path}: malformed geometry attributes ({err})") from err
    if position.shape != (3,) or cosines.shape != (6,) or len(spacing) != 2 or min(spacing) <= 0:
        raise RawDataError(f"{path}: malformed ImagePositionPatient, ImageOrientationPatient or "
                           f"PixelSpacing")
    return _Slice(path, ds, position, cosines, spacing)


def _check_one_series(folder: Path, slices: list[_Slice]) -> None:
    first = slices[0]
    series = {str(s.dataset.get("SeriesInstanceUID", "")) for s in slices}
    if len(series) > 1:
        raise RawDataError(f"{folder}: mixes {len(series)} series (SeriesInstanceUID); keep one "
                           f"series per folder")
    for s in slices[1:]:
        if not np.allclose(s.cosines, first.cosines, atol=COSINE_ATOL):
            raise RawDataError(f"{s.path}: ImageOrientationPatient differs from {first.path.name}'s")
        if not np.allclose(s.spacing, first.spacing, atol=POSITION_ATOL_MM):
            raise RawDataError(f"{s.path}: PixelSpacing {s.spacing} differs from {first.path.name}'s "
                               f"{first.spacing}")
        if (s.dataset.Rows, s.dataset.Columns) != (first.dataset.Rows, first.dataset.Columns):
            raise RawDataError(f"{s.path}: {s.dataset.Rows}x{s.dataset.Columns} pixels, but "
                               f"{first.path.name} has {first.dataset.Rows}x{first.dataset.Columns}")


def _slice_step(folder: Path, slices: list[_Slice], normal: np.ndarray) -> np.ndarray:
    """The average step between neighbouring slices; duplicates and gaps are errors."""
    along = np.array([float(s.position @ normal) for s in slices])
    gaps = np.diff(along)
    for k, gap in enumerate(gaps):
        if gap < POSITION_ATOL_MM:
            raise RawDataError(f"{slices[k + 1].path}: same slice position as {slices[k].path.name} "
                               f"(a duplicate, or two series in {folder})")
    typical = float(np.median(gaps))
    for k, gap in enumerate(gaps):
        if abs(gap - typical) > STEP_RTOL * typical:
            raise RawDataError(f"{folder}: slice gap of {gap:.2f} mm between {slices[k].path.name} and "
                               f"{slices[k + 1].path.name}, typical {typical:.2f} mm (a missing slice?)")
    return (slices[-1].position - slices[0].position) / (len(slices) - 1)


def _pixels(s: _Slice) -> np.ndarray:
    """Decoded, rescaled pixels (rows, columns) float32: Hounsfield units for CT."""
    try:
        array = s.dataset.pixel_array
    except Exception as err:  # missing codec, truncated pixel data, bad compressed stream
        syntax = getattr(s.dataset.file_meta, "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise RawDataError(f"{s.path}: cannot decode pixel data ({name}): {err}") from err
    if array.ndim != 2:
        raise RawDataError(f"{s.path}: pixel data has shape {array.shape}; expected one grey-level "
                           f"plane (rows, columns)")
    slope = float(s.dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(s.dataset.get("RescaleIntercept", 0.0) or 0.0)
    return (array.astype(np.float32) * slope + intercept).astype(np.float32)

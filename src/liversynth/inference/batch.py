"""Batch inference over a folder of studies: which studies, where each mask goes, one study at a time.

Resumable by construction: a study whose output exists is finished (outputs are written atomically,
so an existing file is a whole file), and a kill -9 loses at most the study in progress.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from liversynth.data.readers.base import RawDataError
from liversynth.inference.apply import segment_scan
from liversynth.inference.loading import LoadedModel
from liversynth.inference.scan import is_nifti, read_scan, scan_name, write_on_grid

__all__ = ["StudyResult", "list_studies", "output_for", "segment_study"]


@dataclass(frozen=True)
class StudyResult:
    study: str
    output: Path
    slices: int
    liver_ml: float
    seconds: float


def list_studies(in_dir: Path) -> list[Path]:
    """Every NIfTI file and every sub-folder (DICOM series, patient folder) of `in_dir`, by name;
    names starting with "." are skipped (in-progress copies)."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise RawDataError(f"{in_dir}: input folder is missing")
    studies = sorted(p for p in in_dir.iterdir() if not p.name.startswith(".") and (p.is_dir() or is_nifti(p)))
    if not studies:
        raise RawDataError(f"{in_dir}: holds no studies (NIfTI files or DICOM/patient folders)")
    names = [scan_name(p) for p in studies]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RawDataError(f"{in_dir}: several studies would write the same output: {', '.join(dupes)}")
    return studies


def output_for(study: Path, out_dir: Path) -> Path:
    return Path(out_dir) / f"{scan_name(study)}.nii.gz"


def segment_study(model: LoadedModel, study: Path, out_dir: Path, batch_size: int = 32) -> StudyResult:
    start = time.perf_counter()
    scan = read_scan(study)
    mask, ml = segment_scan(model.module, model.spec, scan, batch_size)
    out = write_on_grid(scan, mask, output_for(study, out_dir))
    return StudyResult(scan_name(study), out, int(mask.shape[0]), ml, time.perf_counter() - start)

"""Which reader reads which dataset layout: one entry per layout (nnU-Net's reader registry, small).

The reader modules import only `base`; this module imports them, so there is no import cycle.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from liversynth.config import DATASETS
from liversynth.data.readers.base import LabelSpec, Reader, Volume
from liversynth.data.readers.chaos import ChaosReader
from liversynth.data.readers.folder import FolderReader

__all__ = ["DATASETS", "FOLDER_DATASETS", "list_patients", "read_patient", "reader_for"]

# dataset name (liversynth.config.DATASETS) -> factory(mr_sequence) of its reader: CHAOS has its own,
# every other dataset is a folder of NIfTI/DICOM volumes.
_SPECIAL: dict[str, Callable[[str], Reader]] = {"chaos": ChaosReader}
FOLDER_DATASETS = tuple(d for d in DATASETS if d not in _SPECIAL)
_READERS: dict[str, Callable[[str], Reader]] = {d: _SPECIAL.get(d, lambda _: FolderReader()) for d in DATASETS}


def reader_for(dataset: str, *, mr_sequence: str = "T2SPIR") -> Reader:
    """The reader of a `data.dataset` name; `mr_sequence` matters for CHAOS only."""
    if dataset not in _READERS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(map(repr, DATASETS))}")
    return _READERS[dataset](mr_sequence)


def list_patients(raw_dir: Path, modality: str, dataset: str = "nifti") -> list[str]:
    return reader_for(dataset).list_patients(Path(raw_dir), modality)


def read_patient(raw_dir: Path, modality: str, patient: str, liver_label: LabelSpec,
                 dataset: str = "nifti", label_values: Sequence[LabelSpec] | None = None) -> Volume:
    return reader_for(dataset).read_patient(Path(raw_dir), modality, patient, liver_label, label_values)

"""An explicit split assignment: which patient folder goes to which split, instead of a seeded draw.

JSON, one list of patient folders per split::

    {"ct_train": ["ct/ct000", "ct/ct001"], "mri_train": ["mri/a"], "mri_test": ["mri/b"]}

or CSV with a header::

    split,path
    ct_train,ct/ct000

Paths are relative to the data root (raw_dir); an absolute path is accepted only inside it. Every
path must be a patient folder of the split's modality as the dataset's reader lays them out. Keep
the manifest inside raw_dir so that DVC versions it with the data it describes.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from liversynth.data.readers import Reader, RawDataError
from liversynth.data.slice_set import SPLITS

__all__ = ["read_split_manifest"]


def read_split_manifest(manifest: Path, raw_dir: Path, reader: Reader) -> dict[str, list[str]]:
    """{split: [patient, ...]} for every split (empty when not listed); errors name the manifest."""
    manifest, raw_dir = Path(manifest), Path(raw_dir)
    entries = _entries(manifest)
    root = raw_dir.resolve()
    plan: dict[str, list[str]] = {split: [] for split in SPLITS}
    seen: dict[Path, str] = {}
    for split, path in entries:
        if split not in SPLITS:
            raise RawDataError(f"{manifest}: unknown split {split!r}; known: {', '.join(SPLITS)}")
        target = (raw_dir / path).resolve()  # an absolute `path` replaces raw_dir here
        if not target.is_relative_to(root):
            raise RawDataError(f"{manifest}: path {path!r} ({split}) leaves the data root {raw_dir}")
        modality = "ct" if split.startswith("ct") else "mri"
        patient = target.name
        if target != reader.patient_dir(raw_dir, modality, patient).resolve() or not target.is_dir():
            raise RawDataError(f"{manifest}: path {path!r} ({split}) is not a {modality} patient "
                               f"folder under {raw_dir}")
        if target in seen:
            where = "twice in " + split if seen[target] == split else f"in two splits: {seen[target]} and {split}"
            raise RawDataError(f"{manifest}: patient {path!r} is listed {where}")
        seen[target] = split
        plan[split].append(patient)
    if not plan["ct_train"]:
        raise RawDataError(f"{manifest}: ct_train lists no patients; EssNet needs a labelled CT cohort")
    return {split: sorted(names) for split, names in plan.items()}


def _entries(manifest: Path) -> list[tuple[str, str]]:
    try:
        text = manifest.read_text()
    except OSError as err:
        raise RawDataError(f"{manifest}: cannot read split manifest ({err.strerror or err})") from err
    if manifest.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise RawDataError(f"{manifest}: not valid JSON ({err})") from err
        if not isinstance(data, dict) or not all(
                isinstance(v, list) and all(isinstance(p, str) for p in v) for v in data.values()):
            raise RawDataError(f"{manifest}: expected {{split: [patient folder, ...]}}")
        return [(split, path) for split, paths in data.items() for path in paths]
    if manifest.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and not {"split", "path"} <= set(rows[0]):
            raise RawDataError(f"{manifest}: CSV needs the columns 'split' and 'path'")
        return [(row["split"].strip(), row["path"].strip()) for row in rows]
    raise RawDataError(f"{manifest}: split manifest must be .json or .csv")

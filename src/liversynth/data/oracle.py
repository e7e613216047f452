"""The oracle translation: each CT patient's own anatomy rendered as MRI by the phantom (phantom only).

Unpaired real data has no ground truth for a CT->MRI translation; the phantom does. Its CT patients
are tissue maps rendered through `render_ct`, so rendering the same tissue map through `render_mri`
gives the perfect translation of that CT scan. That makes two things measurable that otherwise are
not: the ceiling of what any translator can add to a segmenter (the `mix_oracle` and `oracle_only`
arms), and how far a trained translator is from it (synthesis/fidelity.py).

The oracle goes through the same path as `prepare`'s MRI: normalised with `prepare.mri_percentiles`,
on the CT patient's geometry (`to_network_slices`, so `data.spacing_mm` resampling applies), so slice
i of the oracle is the perfect translation of prepared CT slice i, with the CT liver label kept.
Its MRI render draws from a random stream of its own (`ORACLE_STREAM`), so it never shares random
numbers with the CT render or with the MRI cohort.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liversynth.config import PhantomConfig, PrepareConfig
from liversynth.data.anatomy import CohortShift, draw_anatomy
from liversynth.data.phantom import SLICE_THICKNESS_MM, patient_rng, render_mri, to_label
from liversynth.data.prepare import to_network_slices
from liversynth.data.readers import Volume
from liversynth.data.oracle_set import OracleSlices, load_oracle, oracle_absent_reason, save_oracle
from liversynth.data.slice_set import SliceSet

__all__ = ["ORACLE_STREAM", "OracleSlices", "RERENDER_STREAM", "load_oracle", "oracle_absent_reason", "oracle_for", "oracle_slices",
           "save_oracle"]

# patient_rng streams 0 (anatomy), 1 (render) and 2 (MRI cohort shift) are taken by phantom.py.
ORACLE_STREAM = 7
# A second, independent render of the same anatomy: a perfect translator whose texture and noise are
# its own, the most fidelity any translator can score against the oracle (synthesis.fidelity references).
RERENDER_STREAM = 8
_CT_NAME = re.compile(r"ct(\d{3,})")


def oracle_slices(phantom: PhantomConfig, prepare: PrepareConfig, patients: Sequence[str] | None = None,
                  spacing_mm: float | None = None, stream: int = ORACLE_STREAM) -> OracleSlices:
    """The oracle of the named CT patients (default: every CT patient, i.e. the `ct_train` split), in the
    given order, each patient's slices in prepared (inferior -> superior) order. `spacing_mm` is
    `data.spacing_mm`, as `prepare` used it."""
    names = [f"ct{i:03d}" for i in range(phantom.n_ct)] if patients is None else list(patients)
    parts = [_patient(phantom, prepare, name, spacing_mm, stream) for name in names]
    if not parts:
        size = prepare.image_size
        return OracleSlices(np.zeros((0, 1, size, size), np.float32), np.zeros((0, size, size), np.uint8),
                            np.zeros((0, size, size), np.uint8), np.zeros((0,), "<U64"))
    return OracleSlices(np.concatenate([p[0] for p in parts])[:, None], np.concatenate([p[1] for p in parts]),
                        np.concatenate([p[2] for p in parts]),
                        np.concatenate([np.full(len(p[1]), n, "<U64") for n, p in zip(names, parts)]))


def oracle_for(ct: SliceSet, phantom: PhantomConfig, prepare: PrepareConfig,
               spacing_mm: float | None = None, stream: int = ORACLE_STREAM) -> OracleSlices:
    """The oracle aligned slice for slice with a prepared CT split (e.g. `SliceSet.load(PREPARED / "ct_train")`
    or a subset of its patients); raises if the split is not what the phantom config makes."""
    order = list(dict.fromkeys(np.asarray(ct.patients).tolist()))
    oracle = oracle_slices(phantom, prepare, order, spacing_mm, stream)
    if len(oracle) != len(ct) or not np.array_equal(oracle.patients, np.asarray(ct.patients)):
        raise ValueError(f"the oracle of {len(order)} CT patients has {len(oracle)} slices, the CT split "
                         f"{len(ct)} in another patient order: is the raw data this phantom config's?")
    return oracle


def _patient(phantom: PhantomConfig, prepare: PrepareConfig, name: str,
             spacing_mm: float | None, stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    match = _CT_NAME.fullmatch(name)
    if match is None or int(match.group(1)) >= phantom.n_ct:
        raise ValueError(f"oracle: {name!r} is not a CT patient of this phantom (ct000..ct{phantom.n_ct - 1:03d})")
    index = int(match.group(1))
    # The CT render's anatomy: the same draw make_patient does for this CT patient.
    tissue = draw_anatomy(patient_rng(phantom.seed, "ct", index), phantom.size, phantom.slices, CohortShift())
    mri = render_mri(tissue, patient_rng(phantom.seed, "ct", index, stream=stream))
    spacing = (SLICE_THICKNESS_MM, float(phantom.spacing_mm), float(phantom.spacing_mm))

    def volume(label: np.ndarray) -> Volume:
        return Volume(name, "mri", mri, label, spacing, Path(name))

    image, liver = to_network_slices(volume((to_label(tissue) == 1).astype(np.uint8)), prepare, spacing_mm)
    _, tissue_map = to_network_slices(volume(tissue.astype(np.uint8)), prepare, spacing_mm)
    return image.astype(np.float32), liver.astype(np.uint8), tissue_map.astype(np.uint8)


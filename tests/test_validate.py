from pathlib import Path

import numpy as np
import pytest

from liversynth.config import Params, PrepareConfig, ValidateConfig
from liversynth.data.slice_set import SliceSet
from liversynth.data.validation import DataValidationError, validate_prepared

PARAMS = Params(prepare=PrepareConfig(image_size=32),
                validate=ValidateConfig(min_slices={"ct_train": 8}, min_liver_fraction=0.5))


def test_clean_data_passes(prepared_dir: Path):
    report = validate_prepared(PARAMS, prepared_dir)
    assert report["success"] and all(c["success"] for c in report["checks"])


def _rewrite(folder: Path, **changes) -> None:
    s = SliceSet.load(folder, mmap=False)
    fields = {"images": s.images.copy(), "labels": s.labels.copy(), "patients": s.patients.copy()}
    for key, fn in changes.items():
        fn(fields[key])
    SliceSet(**fields).save(folder)


@pytest.mark.parametrize("split, change, message", [
    ("mri_val", {"images": lambda a: a.__setitem__((0, 0, 0, 0), np.nan)}, "finite"),
    ("mri_test", {"labels": lambda a: a.__setitem__((1, 0, 0), 3)}, "label_max"),
    ("mri_train", {"images": lambda a: a.__setitem__((2, 0, 0, 0), 4.0)}, "max"),
    ("mri_test", {"patients": lambda a: a.__setitem__(0, "mri_val-0")}, "patient"),
    ("mri_val", {"labels": lambda a: a.fill(0)}, "has_liver"),
])
def test_bad_data_fails_with_readable_message(prepared_dir: Path, split, change, message):
    _rewrite(prepared_dir / split, **change)
    with pytest.raises(DataValidationError, match=message) as err:
        validate_prepared(PARAMS, prepared_dir)
    assert split in str(err.value)


def test_too_few_slices(prepared_dir: Path):
    params = Params(prepare=PrepareConfig(image_size=32), validate=ValidateConfig(min_slices={"ct_train": 100}))
    with pytest.raises(DataValidationError, match="split:ct_train.*row_count"):
        validate_prepared(params, prepared_dir)

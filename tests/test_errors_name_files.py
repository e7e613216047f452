"""Errors name the file: a disk that fills during an atomic write says which file it was writing (and
leaves no temp file), and a corrupt checkpoint that is discarded is logged with its path and why."""
from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from liversynth.training.checkpoint import load_checkpoint, save_checkpoint
from liversynth.utils.files import write_atomic_dir, write_atomic_file


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on a 64 KiB tmpfs (a real full disk; needs root), else one whose fsync reports ENOSPC
    (the OS boundary, as a full disk reports it)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True).returncode == 0
    if not mounted:
        def no_space(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "fsync", no_space)
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


def test_enospc_in_an_atomic_write_names_the_path(full_disk: Path) -> None:
    target = full_disk / "reports" / "big.bin"
    with pytest.raises(OSError) as info:
        write_atomic_file(target, b"x" * 512 * 1024)
    assert info.value.errno == errno.ENOSPC
    assert str(target) in str(info.value) and "no space left" in str(info.value), info.value
    assert not target.exists() and list(target.parent.iterdir()) == []  # no half file, no temp left


def test_enospc_in_an_atomic_folder_write_names_the_folder(full_disk: Path) -> None:
    target = full_disk / "prepared"
    with pytest.raises(OSError) as info:
        write_atomic_dir(target, lambda tmp: (tmp / "a.bin").write_bytes(b"x" * 512 * 1024))
    assert info.value.errno == errno.ENOSPC and str(target) in str(info.value), info.value
    assert not target.exists() and list(full_disk.iterdir()) == []


def test_a_corrupt_checkpoint_is_discarded_with_a_warning_naming_it(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "essnet_seed0.pt"
    save_checkpoint(path, {"fingerprint": "abc", "step": 3})
    assert load_checkpoint(path, "abc", torch.device("cpu"))["step"] == 3
    path.write_bytes(path.read_bytes()[:40])  # truncated, as by a disk error
    with caplog.at_level(logging.WARNING, logger="liversynth.training.checkpoint"):
        assert load_checkpoint(path, "abc", torch.device("cpu")) is None
    [record] = caplog.records
    assert str(path) in record.getMessage() and "discarded" in record.getMessage()
    # Another training's checkpoint is not corrupt: it is skipped without a warning.
    save_checkpoint(path, {"fingerprint": "other", "step": 3})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="liversynth.training.checkpoint"):
        assert load_checkpoint(path, "abc", torch.device("cpu")) is None
    assert caplog.records == []

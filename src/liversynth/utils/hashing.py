"""Short stable content hashes: of JSON-able values and files, and of array samples."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["array_sample_digest", "code_fingerprint", "fingerprint"]


def fingerprint(*parts: Any, length: int = 12) -> str:
    """A stable hash of JSON-able values and (for Path parts) file contents, for naming studies and runs."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with part.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:length]


def array_sample_digest(arrays: Iterable[np.ndarray], samples: int = 8) -> tuple[str, list[list[int]]]:
    """Digest of every array's shape and of `samples` strided rows of each (cheap on memory maps).

    Enough to tell different data of equal shape apart when deciding whether a checkpoint belongs
    to a training; not a full content hash.
    """
    digest, shapes = hashlib.sha256(), []
    for arr in arrays:
        digest.update(np.array(arr[:: max(1, len(arr) // samples)]).tobytes())
        shapes.append(list(arr.shape))
    return digest.hexdigest(), shapes


def code_fingerprint(*roots: Path) -> str:
    """A stable hash of every .py file under `roots` (files or folders), by relative path and content."""
    h = hashlib.sha256()
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for f in files:
            h.update(str(f.as_posix()).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]

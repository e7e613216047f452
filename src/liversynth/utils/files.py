"""Durable atomic writes: a temporary sibling, fsync, rename, fsync of the folder.

A reader never sees half a file, and a file whose write returned survives a crash or power loss.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["fsync_dir", "remove_path", "write_atomic_dir", "write_atomic_file", "wide_means", "write_csv", "write_json"]


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_path(path: Path) -> None:
    """Remove a file, link or folder tree, whichever it is; nothing if it does not exist."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            with open(Path(root) / name, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(root))


def write_atomic_dir(folder: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a fresh temp folder beside `folder`, make it durable, then swap it into place.

    A leftover `.<name>.old` of any kind (a file, a folder, from a killed swap) is cleared first.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write(tmp)
        _fsync_tree(tmp)
        if folder.exists() or folder.is_symlink():
            old = folder.with_name(f".{folder.name}.old")
            remove_path(old)
            os.replace(folder, old)
            os.replace(tmp, folder)
            remove_path(old)
        else:
            os.replace(tmp, folder)
        fsync_dir(folder.parent)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _naming(err, folder) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_atomic_file(path: Path, data: bytes | str) -> None:
    """Write a file via a temporary sibling, fsync and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(err, path) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _naming(err: OSError, path: Path) -> OSError:
    """The same error, saying which file could not be written (ENOSPC from fsync names no file)."""
    if err.filename is not None:
        return err
    why = "no space left on device" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    return type(err)(err.errno, f"cannot write {path}: {why}", str(path))


def write_json(path: Path, payload: Any) -> None:
    write_atomic_file(Path(path), json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str] | None = None) -> None:
    """Rows as a CSV with a header, atomically; columns default to the first row's keys."""
    rows = list(rows)
    names = list(fieldnames) if fieldnames is not None else (list(rows[0]) if rows else ["step"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic_file(path, buf.getvalue())


def wide_means(rows: Iterable[Mapping[str, Any]], index: str, column: str, value: str,
               columns: Sequence[str]) -> list[dict[str, Any]]:
    """Long rows -> one row per `index` value with one column per `column` value (e.g. per arm), each
    the mean of `value` over the rows it gathers (e.g. seeds); empty values are skipped, a missing cell
    is left empty. For `dvc plots`: one series per column, so a diff of two revisions reads."""
    sums: dict[Any, dict[str, list[float]]] = {}
    for row in rows:
        if row.get(value) in (None, ""):
            continue
        sums.setdefault(row[index], {}).setdefault(str(row[column]), []).append(float(row[value]))
    return [{index: key, **{c: (sum(v) / len(v) if (v := cells.get(c)) else "") for c in columns}}
            for key, cells in sums.items()]

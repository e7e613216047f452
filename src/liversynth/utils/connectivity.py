"""Fail fast on a service that cannot be used: one line naming the URL, in seconds, before any write.

An MLflow client meeting an unreachable server sits in urllib3's retry back-off for minutes, and a
read-only store fails deep inside SQLAlchemy; both are checked here first, cheaply.
"""
from __future__ import annotations

import os
import socket
import sqlite3
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from liversynth.utils.stage_errors import StageError

__all__ = ["STORE_LOCK_WAIT_ENV", "ServiceUnavailable", "check_http", "check_tracking_store", "check_writable",
           "wait_for_sqlite_lock"]

# How long a stage waits for another process's lock on a sqlite MLflow store before it gives up.
STORE_LOCK_WAIT_ENV = "LIVERSYNTH_STORE_LOCK_WAIT_S"
STORE_LOCK_WAIT_S = 120.0


class ServiceUnavailable(StageError, RuntimeError):
    """A tracking store or API that cannot be reached or written; the message is one line."""


def check_http(url: str, what: str, timeout_s: float = 3.0, path: str = "") -> None:
    """Any HTTP answer (even 401 or 404) means the server is there; no answer within `timeout_s` fails."""
    start = time.monotonic()
    target = url.rstrip("/") + path
    try:
        with urllib.request.urlopen(target, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, socket.timeout) as err:
        reason = getattr(err, "reason", err)
        raise ServiceUnavailable(f"{what} {url} is unreachable: {reason} (after {time.monotonic() - start:.1f} s)") \
            from None


def check_writable(path: Path, what: str) -> None:
    """`path` (a file that may not exist yet) can be written: a probe file is created in the nearest
    existing folder (root ignores permission bits, not a read-only file system), and an existing file
    must be writable."""
    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ServiceUnavailable(f"{what} is not writable: cannot create a file in {folder} ({err.strerror})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ServiceUnavailable(f"{what} is not writable: {path} is read-only")


def check_tracking_store(uri: str, timeout_s: float = 3.0) -> None:
    """An MLflow tracking URI that can be used now: a server that answers, or a local store we can write."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        check_http(uri, "MLflow tracking server", timeout_s, "/health")
    elif scheme == "sqlite":
        db = uri.removeprefix("sqlite:///")
        if db and db != ":memory:":
            check_writable(Path(db), f"MLflow store {uri}")
            wait_for_sqlite_lock(Path(db), f"MLflow store {uri}")
    elif scheme in ("", "file"):
        check_writable(Path(urlparse(uri).path or uri) / "meta.yaml", f"MLflow store {uri}")


def wait_for_sqlite_lock(db: Path, what: str, wait_s: float | None = None) -> None:
    """Wait (up to $LIVERSYNTH_STORE_LOCK_WAIT_S, default 120 s) until the sqlite file could be written.

    Another process holding the store (`BEGIN EXCLUSIVE`, a long write) used to fail a stage after
    MLflow's ~29 s of retries with a long SQLAlchemy traceback; here a write lock is taken and dropped
    at once (BEGIN IMMEDIATE, sqlite's busy timeout doing the waiting), else one line naming the store.
    """
    if not Path(db).exists():
        return
    if wait_s is None:
        wait_s = float(os.environ.get(STORE_LOCK_WAIT_ENV, STORE_LOCK_WAIT_S))
    start = time.monotonic()
    con = sqlite3.connect(str(db), timeout=wait_s, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
    except sqlite3.OperationalError as err:
        waited = time.monotonic() - start
        if "locked" in str(err) or "busy" in str(err):
            raise ServiceUnavailable(f"{what} is locked by another process: still locked after {waited:.0f} s "
                                     f"({STORE_LOCK_WAIT_ENV}={wait_s:g})") from None
        raise ServiceUnavailable(f"{what} cannot be used: {err}") from None
    finally:
        con.close()

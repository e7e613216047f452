"""Which process owns a piece of work, and whether it is still alive (for runs and trials left RUNNING).

An owner is "<host>:<pid>@<start>", `start` being the process's start time where the OS tells it
(Linux: /proc/<pid>/stat, clock ticks since boot). With it, a pid that the kernel has given to another
process since the owner died (pid reuse) does not keep a dead owner's work open; nor does a zombie.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["owner_alive", "owner_id", "owner_pid", "pid_alive", "process_start"]


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields from field 3 (state) on; None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    return stat[stat.rfind(")") + 2:].split()


def process_start(pid: int, fields: list[str] | None = None) -> str | None:
    """The process's start time (clock ticks since boot) as text; None where /proc does not say."""
    fields = _stat_fields(pid) if fields is None else fields
    return fields[19] if fields and len(fields) > 19 else None  # field 22 of stat; fields[0] is field 3


def owner_id() -> str:
    """"<host>:<pid>@<start>" of this process ("<host>:<pid>" where the start time is unknown)."""
    pid = os.getpid()
    start = process_start(pid)
    return f"{socket.gethostname()}:{pid}" + (f"@{start}" if start else "")


def _running(pid: int) -> list[str] | None:
    """The stat fields of a live process (None for a gone or zombie one: exited, only not yet reaped,
    its work is over); [] for a live process whose /proc we cannot read."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # exists, owned by someone else
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return []
    return None if fields[:1] == ["Z"] else fields


def pid_alive(pid: int) -> bool:
    return _running(pid) is not None


def owner_pid(owner: str) -> tuple[str, int, str] | None:
    """(host, pid, start time or "") of an owner "<host>:<pid>[@<start>]"; None if it is not one."""
    host, _, process = owner.rpartition(":")
    pid, _, start = process.partition("@")
    return (host, int(pid), start) if host and pid.isdigit() else None


def owner_alive(owner: str) -> bool:
    """False only for a process on this host that is gone (or whose pid now names another process);
    another host's process is not ours to judge. /proc/<pid>/stat is read once."""
    parsed = owner_pid(owner)
    if parsed is None or parsed[0] != socket.gethostname():
        return True
    _, pid, start = parsed
    fields = _running(pid)
    if fields is None:
        return False
    now = process_start(pid, fields)
    return not (start and now and now != start)

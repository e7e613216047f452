"""Which process owns a piece of work, and whether it is still alive (for runs and trials left RUNNING).

An owner is "<host>:<pid>@<start>", `start` being the process's start time where the OS tells it
(Linux: /proc/<pid>/stat, clock ticks since boot). With it, a pid that the kernel has given to another
process since the owner died (pid reuse) does not keep a dead owner's work open; nor does a zombie.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["owner_alive", "owner_id", "pid_alive", "process_start"]


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) as text; None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of stat; fields[0] is field 3


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].startswith("Z")


def owner_id() -> str:
    """"<host>:<pid>@<start>" of this process ("<host>:<pid>" where the start time is unknown)."""
    pid = os.getpid()
    start = process_start(pid)
    return f"{socket.gethostname()}:{pid}" + (f"@{start}" if start else "")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return not _zombie(pid)  # exited, only not yet reaped: its work is over


def owner_alive(owner: str) -> bool:
    """False only for a process on this host that is gone (or whose pid now names another process);
    another host's process is not ours to judge."""
    host, _, process = owner.rpartition(":")
    pid, _, start = process.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    if not pid_alive(int(pid)):
        return False
    now = process_start(int(pid))
    return not (start and now and now != start)

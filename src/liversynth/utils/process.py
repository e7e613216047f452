"""Which process owns a piece of work, and whether it is still alive (for runs and trials left RUNNING)."""
from __future__ import annotations

import os
import socket

__all__ = ["owner_alive", "owner_id", "pid_alive"]


def owner_id() -> str:
    """"<host>:<pid>" of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def owner_alive(owner: str) -> bool:
    """False only for a process on this host that is gone; another host's process is not ours to judge."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return pid_alive(int(pid))

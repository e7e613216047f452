"""No debris after a kill: the guard of scripts/prefect_api.py takes its server's whole session down when
its parent dies, even by SIGKILL, and a leftover guard named in the pid file is killed on the next start.
The "server" here is `sleep` run by the real guard code (the full Prefect server is in test_faults_pipeline)."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, session_pids

SCRIPT = REPO / "scripts" / "prefect_api.py"


def _gone(sid: int, timeout_s: float = 10) -> bool:
    end = time.monotonic() + timeout_s
    while session_pids(sid) and time.monotonic() < end:
        time.sleep(0.05)
    return not session_pids(sid)


PARENT = """
import subprocess, sys, time
guard = subprocess.Popen([sys.executable, sys.argv[1], "--guard", str(__import__("os").getpid()), sys.argv[2],
                          "sleep", "600"], start_new_session=True)
print(guard.pid, flush=True)
time.sleep(600)
"""


def test_server_session_dies_with_its_killed_parent(tmp_path: Path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(SCRIPT), str(tmp_path / "server.log")],
                              stdout=subprocess.PIPE, text=True)
    guard = int(parent.stdout.readline())
    end = time.monotonic() + 10
    while len(session_pids(guard)) < 2 and time.monotonic() < end:  # the guard and its "server"
        time.sleep(0.05)
    assert len(session_pids(guard)) == 2
    parent.kill()  # SIGKILL: no handler, no finally, no EXIT trap runs
    parent.wait()
    assert _gone(guard), f"left behind: {session_pids(guard)}"


def test_leftover_guard_in_the_pid_file_is_killed_on_next_start(tmp_path: Path):
    spec = importlib.util.spec_from_file_location("prefect_api", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # A guard whose parent (this test) stays alive, as after a crash that lost the parent's signal.
    guard = subprocess.Popen([sys.executable, str(SCRIPT), "--guard", str(os.getpid()), str(tmp_path / "log"),
                              "sleep", "600"], start_new_session=True)
    try:
        end = time.monotonic() + 10
        while len(session_pids(guard.pid)) < 2 and time.monotonic() < end:
            time.sleep(0.05)
        (tmp_path / "server.pid").write_text(str(guard.pid))
        module.kill_leftover(tmp_path / "server.pid")
        guard.wait(timeout=10)
        assert _gone(guard.pid)
        (tmp_path / "server.pid").write_text(str(os.getpid()))  # a reused pid that is not a guard: untouched
        module.kill_leftover(tmp_path / "server.pid")
    finally:
        if guard.poll() is None:
            os.killpg(guard.pid, signal.SIGKILL)

"""Stopping `make run` stops the whole pipeline: a SIGTERM to make alone (make passes it to its recipe
shell, which dies without passing it on) or `timeout make run` leaves no process of the pipeline
running. The pipeline is a stand-in with the same shape (scripts/with_prefect_api.sh, then a command
whose children run on), the recipe the Makefile's own `run` one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from prefect_api import descendants  # noqa: E402

# Like `make run`: the wrapper, then a follow-up command that must not run after a stop.
MAKEFILE = """SHELL := /bin/bash
run:
\tstart=$$(date +%s); {wrapper} bash -c 'sleep 300 & sleep 301; wait'; echo "$$start" > {after}
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(tmp_path: Path, timeout_s: int | None) -> tuple[subprocess.Popen, list[int]]:
    (tmp_path / "Makefile").write_text(MAKEFILE.format(wrapper=REPO / "scripts" / "with_prefect_api.sh",
                                                       after=tmp_path / "after"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PREFECT_API_URL": "http://127.0.0.1:9/api",  # set: the wrapper starts no server
           "LIVERSYNTH_STOP_GRACE_S": "2"}
    command = ["make", "-s", "-C", str(tmp_path), "run"]
    proc = subprocess.Popen((["timeout", str(timeout_s)] if timeout_s else []) + command, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tree = descendants(proc.pid)
        if any(b"sleep\x00301" in Path(f"/proc/{p}/cmdline").read_bytes() for p in tree if _alive(p)):
            return proc, [proc.pid, *tree]
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the stand-in pipeline did not start")


@pytest.mark.parametrize("how", ["sigterm-to-make-only", "timeout"])
def test_stopping_make_stops_every_process_under_it(tmp_path: Path, how: str) -> None:
    proc, tree = _start(tmp_path, 4 if how == "timeout" else None)
    assert len(tree) >= 5  # make, recipe shell, wrapper, bash, two sleeps
    if how == "sigterm-to-make-only":
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in tree):
            time.sleep(0.1)
        survivors = [p for p in tree if _alive(p)]
        assert not survivors, [Path(f"/proc/{p}/cmdline").read_bytes() for p in survivors]
        assert not (tmp_path / "after").exists()  # the recipe stopped, too
    finally:
        for pid in tree:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

"""Run a command against one local Prefect API server that never outlives this process.

    python scripts/prefect_api.py dvc repro      (what scripts/with_prefect_api.sh runs)

The server runs in its own session under a small guard process. The guard asks the kernel for a
signal when this supervisor dies (`prctl(PR_SET_PDEATHSIG)`), so even a `kill -9` of the supervisor
(or of its whole process group) takes the server down: the guard then kills the server's session.
The guard's pid is also kept in $PREFECT_HOME/server.pid; a leftover one (from a machine crash in
between, say) is killed on the next start. Flow runs left RUNNING or PENDING in the server's
database by a killed earlier run are marked CRASHED once the new server answers.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PR_SET_PDEATHSIG = 1
GUARD = "--guard"


def set_parent_death_signal(sig: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def guard(parent: int, log: str, command: list[str]) -> None:
    """Session leader: start the server in this session; when the parent dies, kill the session."""
    def stop(*_: object) -> None:
        os.killpg(0, signal.SIGKILL)  # the server, its children and this guard

    signal.signal(signal.SIGTERM, stop)
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the prctl took effect
        stop()
    with open(log, "ab") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server.wait()
    stop()


def kill_leftover(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if GUARD.encode() in cmdline and Path(__file__).name.encode() in cmdline:
        print(f"prefect_api: killing a leftover Prefect server (guard pid {pid})", file=sys.stderr)
        os.killpg(pid, signal.SIGKILL)


def wait_healthy(url: str, guard_proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            return
        except OSError:
            if guard_proc.poll() is not None:
                sys.exit(f"Prefect server failed to start; see {log}:\n" + log.read_text()[-2000:])
            time.sleep(0.5)
    sys.exit(f"Prefect server did not answer within {timeout_s:.0f} s; see {log}")


async def crash_interrupted_runs() -> int:
    """Flow runs a killed earlier run left RUNNING/PENDING: nothing runs them now, mark them CRASHED."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    live = FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=live)))
        for run in runs:
            await client.set_flow_run_state(run.id, Crashed(message="interrupted: its process was killed"),
                                            force=True)
    return len(runs)


def main(argv: list[str]) -> int:
    if argv and argv[0] == GUARD:
        guard(int(argv[1]), argv[2], argv[3:])
        return 0
    home = Path(os.environ.get("PREFECT_HOME", Path.cwd() / ".prefect"))
    home.mkdir(parents=True, exist_ok=True)
    pid_file, log = home / "server.pid", home / "server.log"
    kill_leftover(pid_file)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    log.write_bytes(b"")
    guard_proc = subprocess.Popen([sys.executable, __file__, GUARD, str(os.getpid()), str(log), *server],
                                  start_new_session=True)
    pid_file.write_text(str(guard_proc.pid))
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url
    try:
        wait_healthy(url, guard_proc, log)
        if crashed := asyncio.run(crash_interrupted_runs()):
            print(f"prefect_api: marked {crashed} interrupted flow run(s) CRASHED", file=sys.stderr)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        return subprocess.call(argv)
    finally:
        guard_proc.terminate()
        guard_proc.wait()
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

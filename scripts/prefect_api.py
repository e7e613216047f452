"""Run a command against one local Prefect API server that never outlives this process.

    python scripts/prefect_api.py dvc repro      (what scripts/with_prefect_api.sh runs)

The command and everything under it are stopped on SIGTERM/SIGINT/SIGHUP or when the shell that
started this process dies (`run_group`): stopping `make run` stops the pipeline.

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
NO_SERVER = "--no-server"  # PREFECT_API_URL already set: only run the command as a stoppable group
STOP_GRACE_ENV = "LIVERSYNTH_STOP_GRACE_S"  # seconds between the forwarded signal and SIGKILL (default 10)


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


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc), parents before children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reaped(pid: int, flags: int) -> bool:
    try:
        return os.waitpid(pid, flags)[0] == pid
    except ChildProcessError:  # already reaped
        return True


def run_group(argv: list[str]) -> int:
    """Run `argv` (dvc repro) and take every process under it down with us.

    make forwards SIGTERM to its recipe shell, which dies without passing it on, and dvc leaves its
    stage processes running when it is killed: so a `timeout make run` used to leave the pipeline
    running. Here SIGTERM/SIGINT/SIGHUP, or the death of the shell that started us (PDEATHSIG), are
    sent to every descendant, then SIGKILL after a grace period. The command stays in our process
    group, so a kill of the group (tests/test_faults_pipeline.py) still reaches it directly.
    """
    parent = os.getppid()
    proc = subprocess.Popen(argv)

    def stop(sig: int, _: object = None) -> None:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        _signal_all(descendants(os.getpid()), sig)
        # os.waitpid, not proc.wait: this handler may run inside proc.wait, which holds Popen's lock.
        end = time.monotonic() + float(os.environ.get(STOP_GRACE_ENV, "10"))
        while time.monotonic() < end and not _reaped(proc.pid, os.WNOHANG):
            time.sleep(0.1)
        for _ in range(3):  # stage processes dvc left behind, and any started meanwhile
            _signal_all(descendants(os.getpid()), signal.SIGKILL)
            time.sleep(0.1)
        _reaped(proc.pid, 0)
        raise SystemExit(128 + sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the shell died before the prctl took effect
        stop(signal.SIGTERM)
    code = proc.wait()
    return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    if argv and argv[0] == GUARD:
        guard(int(argv[1]), argv[2], argv[3:])
        return 0
    if argv and argv[0] == NO_SERVER:
        return run_group(argv[1:])
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
        return run_group(argv)
    finally:
        guard_proc.terminate()
        guard_proc.wait()
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Peak memory per phase of one process, and a description of the machine the figures come from."""
from __future__ import annotations

import contextlib
import os
import platform
import resource
from collections.abc import Iterator
from pathlib import Path

import psutil
import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _hwm_mb() -> float:
    """The process's peak RSS so far (VmHWM on Linux; ru_maxrss elsewhere, which cannot be reset)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRss:
    """Peak RSS of each `with rss.phase(name)` block, in MiB.

    Linux lets a process reset its high-water mark to its current RSS (write 5 to clear_refs), so
    two phases in one process each get their own peak; what an earlier phase left allocated counts.
    """

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            pass
        try:
            yield
        finally:
            # A phase run several times (interleaved rounds) keeps its highest peak.
            self.phases[name] = max(self.phases.get(name, 0.0), round(_hwm_mb(), 1))


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),  # > 0.5 here: someone else was busy
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_flags() -> list[str]:
    """The CPU's vector / matrix flags that decide fp32 and bf16 speed (avx2, avx512*, amx*)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split(":", 1)[1].split() if f.startswith(("avx2", "avx512", "amx")))
    except OSError:
        pass
    return []

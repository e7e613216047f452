"""The machine a run was made on: CPU model and the ISA flags that change float results, threads,
GPU, and the versions of the numeric stack. Recorded with every MLflow run and in metrics.json."""
from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["ISA_FLAGS", "machine_record"]

# Flags that select other oneDNN/BLAS kernels, and so other float rounding.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "fma")


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return model, flags


def machine_record() -> dict[str, str]:
    """Flat string fields, ready to be MLflow tags (`machine.*`) or a metrics.json section."""
    import numpy

    model, flags = _cpuinfo()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "cpu": model,
        "isa": ",".join(f for f in ISA_FLAGS if f in flags) or "none",
        "threads": str(torch.get_num_threads()),
        "interop_threads": str(torch.get_num_interop_threads()),
        "deterministic": str(torch.are_deterministic_algorithms_enabled()).lower(),
        "gpu": gpu,
        "torch": torch.__version__,
        "monai": metadata.version("monai"),  # not `import monai`: that takes seconds
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }

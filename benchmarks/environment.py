"""What a result was measured on: machine, device and library versions."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import gpunet
from gpunet.backend import cuda_status
from gpunet.backend.cuda_probe import device_properties


def describe_environment() -> dict[str, Any]:
    return {"machine": platform.machine(), "processor": _cpu_model(), "cores": os.cpu_count(),
            "memory_bytes": _memory_bytes(), "python": platform.python_version(),
            "os": platform.platform(), "gpunet": gpunet.__version__,
            "numpy": _version("numpy"), "cupy": _cupy_version(), "torch": _version("torch"),
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "cuda": _cuda_device()}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cupy_version() -> str | None:
    return next(filter(None, (_version(name) for name in ("cupy", "cupy-cuda12x", "cupy-cuda13x"))),
                None)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cuda_device() -> dict[str, Any]:
    status = cuda_status()
    if not status.usable:
        return {"usable": False, "reason": status.reason}
    return {"usable": True, **device_properties()}

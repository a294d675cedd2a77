"""What a result was measured on: machine, load, thread pools, device and library versions."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from threadpoolctl import threadpool_info

from .. import __version__
from ..backend import cuda_status
from ..backend.cuda_probe import device_properties


def describe_environment() -> dict[str, Any]:
    """The machine and its libraries as they are now. ``thread_pools`` are the
    BLAS and OpenMP libraries loaded in this process with the threads each
    really uses (threadpoolctl), ``load_average`` the system's over 1, 5 and 15
    minutes: what the measurements shared the cores with."""
    return {"machine": platform.machine(), "processor": _cpu_model(), "cores": os.cpu_count(),
            "memory_bytes": _memory_bytes(), "load_average": _load_average(),
            "python": platform.python_version(), "os": platform.platform(),
            "gpunet": __version__, "numpy": _version("numpy"), "cupy": _cupy_version(),
            "torch": _version("torch"), "thread_pools": threadpool_info(),
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


def _load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


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

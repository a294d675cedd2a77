"""Is a CUDA device usable through CuPy, and if not, why not (in one line)?

Versions decide little: ``runtimeGetVersion()`` is the CUDA runtime CuPy was
built with (cupy_backends/cuda/api/runtime.pyx), and CuPy compiles kernels to
SASS for the device (``-arch=sm_XX``, cupy/cuda/compiler.py), so any driver of
the same CUDA major version runs it. The probe compares major versions only and
lets real work decide the rest: the three things a training step needs, each
checked against its known answer on device 0 (``STEPS``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .kernels import KERNELS, build

CUDA_EXTRAS = (12, 13)  # gpunet[cuda12], gpunet[cuda13]
INSTALL = ("install gpunet[cuda12] or gpunet[cuda13] (the CUDA major version "
           "`nvidia-smi` shows), which bring CUDA's libraries and headers")
NO_DEVICE = 100  # cudaErrorNoDevice


@dataclass(frozen=True)
class CudaStatus:
    usable: bool
    reason: str
    device: bool = False  # an NVIDIA driver sees a device here, usable or not


def _kernel(cupy: Any) -> tuple[Any, list]:
    x = cupy.asarray([-1e4, 0.0, 1e4], dtype=cupy.float32)
    return build(KERNELS["sigmoid"])(x), [0.0, 0.5, 1.0]


def _matmul(cupy: Any) -> tuple[Any, list]:
    a = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)
    return cupy.matmul(a, a.T), [[5.0, 14.0], [14.0, 50.0]]


def _argsort(cupy: Any) -> tuple[Any, list]:
    return cupy.argsort(cupy.asarray([3, 1, 2, 0], dtype=cupy.uint64), kind="stable"), [3, 1, 2, 0]


# What a training step needs, as (what it is, a call giving (result, expected)).
STEPS: tuple[tuple[str, Callable[[Any], tuple[Any, list]]], ...] = (
    ("a gpunet kernel (NVRTC, CUDA headers)", _kernel),
    ("a matrix product (cuBLAS)", _matmul),
    ("argsort (Thrust)", _argsort),
)


def probe_cuda() -> CudaStatus:
    """Import CuPy, check the driver's CUDA major version, run ``STEPS`` on device 0;
    report the first thing that stopped it."""
    try:
        import cupy
    except ImportError as exc:
        return CudaStatus(False, f"CuPy is not installed ({exc}); {INSTALL}")
    runtime = cupy.cuda.runtime
    try:
        driver, built = runtime.driverGetVersion(), runtime.runtimeGetVersion()
    except Exception as exc:  # a CUDA runtime library that will not load
        return CudaStatus(False, f"cannot query the CUDA driver: {_one_line(exc)}")
    if driver == 0:  # what cudaDriverGetVersion reports when no driver is installed
        return CudaStatus(False, "no NVIDIA driver found (CPU only)")
    if driver // 1000 < built // 1000:
        fix = (f"install gpunet[cuda{driver // 1000}] or update the driver"
               if driver // 1000 in CUDA_EXTRAS else "update the driver")
        return CudaStatus(False, f"CUDA driver too old: it supports CUDA {_version(driver)}, "
                                 f"CuPy was built for CUDA {_version(built)}; {fix}", device=True)
    try:
        count = runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError
        present = getattr(exc, "status", None) != NO_DEVICE
        return CudaStatus(False, f"no usable CUDA device: {_one_line(exc)}", device=present)
    if count == 0:
        return CudaStatus(False, "the NVIDIA driver sees no CUDA device "
                                 "(check CUDA_VISIBLE_DEVICES)")
    for what, step in STEPS:
        problem = _run(cupy, step)
        if problem:
            return CudaStatus(False, f"{what} failed on device 0: {problem}", device=True)
    return CudaStatus(True, f"CUDA device 0 ({device_properties()['name']}) is usable", device=True)


def _run(cupy: Any, step: Callable[[Any], tuple[Any, list]]) -> str | None:
    """What went wrong in ``step``, or None when it gave its expected answer."""
    try:
        result, expected = step(cupy)
        got = cupy.asnumpy(result)
    except (ImportError, OSError) as exc:  # a CUDA library CuPy could not load
        return f"{_one_line(exc)}; {INSTALL}"
    except Exception as exc:
        return _one_line(exc)
    if not np.array_equal(got, expected):
        return f"wrong result {got.tolist()}, expected {expected}"
    return None


def device_properties() -> dict[str, object]:
    """Device 0's name, memory, compute capability and CUDA versions (call only
    when a device exists)."""
    import cupy
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return {"name": name, "memory_bytes": props["totalGlobalMem"],
            "compute_capability": f"{props['major']}.{props['minor']}",
            "runtime": _version(runtime.runtimeGetVersion()),
            "driver": _version(runtime.driverGetVersion())}


def _version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

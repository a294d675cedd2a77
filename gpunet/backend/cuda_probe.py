"""Is a CUDA device usable through CuPy, and if not, why not (in one line)?"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CudaStatus:
    usable: bool
    reason: str


def probe_cuda() -> CudaStatus:
    """Import CuPy and run one tiny kernel on device 0; report what stopped it."""
    try:
        import cupy
    except ImportError as exc:
        return CudaStatus(False, f"CuPy is not installed ({exc}); "
                                 "install gpunet[cuda12] or gpunet[cuda13]")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, or a driver library that will not load
        return CudaStatus(False, f"no usable CUDA driver or device: {_one_line(exc)}")
    if count == 0:
        return CudaStatus(False, "CuPy is installed but no CUDA device is visible")
    try:
        driver = cupy.cuda.runtime.driverGetVersion()
        runtime = cupy.cuda.runtime.runtimeGetVersion()
    except Exception as exc:
        return CudaStatus(False, f"cannot query the CUDA driver: {_one_line(exc)}")
    if driver < runtime:
        return CudaStatus(False, f"CUDA driver too old: driver supports CUDA {_version(driver)}, "
                                 f"CuPy was built for CUDA {_version(runtime)}")
    try:
        (cupy.arange(4, dtype=cupy.float32) * 2).sum().get()
    except Exception as exc:
        return CudaStatus(False, f"a test kernel failed on device 0: {_one_line(exc)}")
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    if isinstance(name, bytes):
        name = name.decode()
    return CudaStatus(True, f"CUDA device 0 ({name}) is usable")


def device_properties() -> dict[str, object]:
    """Device 0's name, memory, compute capability and CUDA versions (call only
    when ``probe_cuda()`` said it is usable)."""
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

"""A kernel launch with its arguments built once: a recorded step's eager replay.

CuPy converts each argument of a ``RawKernel`` on every launch
(cupy/cuda/function.pyx: ``_launch`` makes a ``CPointer`` per argument, then
calls ``driver.launchKernel``): 11 µs a launch on an H200's host (2026-12-04,
``benchmarks/gpu_kernel_profile.py``). A ``BoundLaunch`` holds the kernel's
function, its grid and block (raised to at least 1, as CuPy raises them), and
its arguments as ctypes values behind one array of their addresses (CUDA's
``kernelParams``), so a launch is one call of CuPy's ``driver.launchKernel``
(cupy_backends/cuda/api/driver.pyx: ``cuLaunchKernel``, the GIL released).
"""
from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import numpy as np

Bound = Callable[[int], None]  # a launch or library call bound once: called with a stream
# A NumPy scalar argument's C type: the kernel parameter's exact type.
C_VALUES = {np.int64: ctypes.c_int64, np.int32: ctypes.c_int32, np.uint64: ctypes.c_uint64,
            np.float32: ctypes.c_float, np.float64: ctypes.c_double}


class BoundLaunch:
    """Kernel ``function`` (a CUfunction's address) on ``grid`` blocks of
    ``block`` threads with ``args``: device arrays (their data pointers, the
    arrays kept alive here), None (a null pointer) or NumPy scalars (by value);
    called with a stream's address, it launches there by ``launch_kernel``
    (CuPy's ``driver.launchKernel``: function, grid x, y, z, block x, y, z,
    shared bytes, stream, kernel params, extra)."""

    def __init__(self, launch_kernel: Callable[..., None], function: int,
                 grid: tuple[int, ...], block: tuple[int, ...], args: tuple) -> None:
        self.launch_kernel, self.args = launch_kernel, args
        self.values = [_value(arg) for arg in args]
        self.params = (ctypes.c_void_p * len(args))(*map(ctypes.addressof, self.values))
        self.launch = (function, *_dims(grid), *_dims(block))
        self.address = ctypes.addressof(self.params)

    def __call__(self, stream: int) -> None:
        self.launch_kernel(*self.launch, 0, stream, self.address, 0)


def _dims(sizes: tuple[int, ...]) -> tuple[int, int, int]:
    """Three dimensions, the missing ones 1, each at least 1."""
    x, y, z = (tuple(sizes) + (1, 1))[:3]
    return max(1, x), max(1, y), max(1, z)


def _value(arg: Any) -> ctypes._SimpleCData:
    """A kernel argument as the ctypes value cuLaunchKernel copies its bytes from."""
    if arg is None:
        return ctypes.c_void_p(None)
    if type(arg) in C_VALUES:
        return C_VALUES[type(arg)](arg)
    data = getattr(arg, "data", None)
    if data is None or not hasattr(data, "ptr"):
        raise TypeError(f"a bound launch takes device arrays, None and NumPy scalars of "
                        f"{', '.join(t.__name__ for t in C_VALUES)}, got {type(arg).__name__}")
    return ctypes.c_void_p(data.ptr)

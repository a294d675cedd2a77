"""libcublas's own GEMM for the products of a recorded step, captured or not.

CuPy's cuBLAS bindings refuse to run under capture: every one, ``sgemm`` and
``gemmEx`` included, first calls ``_setStream``, and ``setStream`` raises
while the stream captures (cupy_backends/cuda/libs/cublas.pyx: ``setStream``,
``_setStream``, ``sgemm``). ``CapturedCublas`` calls libcublas through ctypes
instead, its handle's stream and workspace set once before the step, so a
graph step and the same step run eagerly make the very same calls.

Each product is one plain ``cublasSgemm_v2`` (``cublasDgemm_v2``) call, its
arguments built once and kept. cuBLAS's batched and grouped calls, which
gpunet used before, picked kernels without split-K for these shapes: on an H200
(2026-12-04) 21-31 µs a product of the deep model's step at batch 128, and
96-165 µs at batch 1024, where a plain call took 3-6 µs with its split-K sum.
"""
from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

import cupy
import numpy as np

from .bound_launch import Bound

Array = Any
CUBLAS_WORKSPACE_BYTES = 32 << 20  # NVIDIA's advice for Hopper; ample for earlier GPUs
OP_N, OP_T = 0, 1  # cublasOperation_t (cublas_api.h): as the memory lies, transposed


class CapturedCublas:
    """libcublas's own GEMM, bypassing CuPy's binding (which calls setStream,
    refused under capture). Importing CuPy's cublas module loads the library
    (found as CuPy finds it), so ctypes then opens that same one by name."""

    def __init__(self) -> None:
        from cupy.cuda import cublas

        self.set_stream = cublas.setStream
        library = ctypes.CDLL(f"libcublas.so.{cupy.cuda.runtime.runtimeGetVersion() // 1000}")
        self.functions = {np.dtype(np.float32): library.cublasSgemm_v2,
                          np.dtype(np.float64): library.cublasDgemm_v2}
        self.set_workspace = library.cublasSetWorkspace_v2
        self.scalars = {dtype: (np.ones(1, dtype), np.zeros(1, dtype))  # alpha, beta on the host
                        for dtype in self.functions}
        self.workspace: Array | None = None
        self.calls: dict[tuple, tuple] = {}  # each product's arguments, by its operands

    def prepare(self, stream: cupy.cuda.Stream) -> None:
        """Point the device's cuBLAS handle at ``stream`` and a workspace of
        its own, so no product allocates while capturing."""
        handle = cupy.cuda.device.get_cublas_handle()
        self.set_stream(handle, stream.ptr)
        if self.workspace is None:
            self.workspace = cupy.empty(CUBLAS_WORKSPACE_BYTES, np.uint8)
        _check(self.set_workspace(ctypes.c_void_p(handle),
                                  ctypes.c_void_p(self.workspace.data.ptr),
                                  ctypes.c_size_t(CUBLAS_WORKSPACE_BYTES)), "SetWorkspace")

    def gemm(self, a: Array, b: Array, out: Array, bound: list[Bound] | None = None) -> None:
        """out = a b of C-contiguous matrices or transposes of them: in cuBLAS's
        column-major terms out^T = b^T a^T, each operand's memory read as it
        lies (op N) or transposed (op T). With ``bound``, the call is appended
        to it, bound (on the stream ``prepare`` set, whatever stream it is given)."""
        handle = cupy.cuda.device.get_cublas_handle()
        key = (handle, *((x.data.ptr, x.shape, x.strides, x.dtype) for x in (a, b, out)))
        arguments = self.calls.get(key)
        if arguments is None:
            arguments = self.calls[key] = self._arguments(handle, a, b, out)
        call = BoundGemm(self.functions[out.dtype], arguments)
        if bound is not None:
            bound.append(call)
        call(0)

    def _arguments(self, handle: int, a: Array, b: Array, out: Array) -> tuple:
        """The arguments of ``gemm``'s call, as ctypes objects."""
        op_b, op_a, n, m, k, ld_b, ld_a = _problem(a, b, out)
        one, zero = self.scalars[out.dtype]
        pointer = ctypes.c_void_p
        return (pointer(handle), op_b, op_a, n, m, k, pointer(one.ctypes.data),
                pointer(b.data.ptr), ld_b, pointer(a.data.ptr), ld_a, pointer(zero.ctypes.data),
                pointer(out.data.ptr), n)


def _problem(a: Array, b: Array, out: Array) -> tuple[int, ...]:
    """(op_b, op_a, n, m, k, ld_b, ld_a): cuBLAS's terms for out = a b
    (``CapturedCublas.gemm``); ValueError for operands it cannot read in place."""
    (m, k), n = a.shape, b.shape[1]
    ops = [_operand(x) for x in (b, a)]
    if not out.flags.c_contiguous or None in ops or not a.dtype == b.dtype == out.dtype:
        raise ValueError("a captured product needs C-contiguous matrices or their "
                         "transposes, of one dtype")
    (op_b, ld_b), (op_a, ld_a) = ops
    return op_b, op_a, n, m, k, ld_b, ld_a


def _operand(x: Array) -> tuple[int, int] | None:
    """(cuBLAS op, leading dimension) reading matrix ``x`` in place: op N for a
    C-contiguous ``x``, op T for the transpose of one; None for other strides."""
    if x.flags.c_contiguous:
        return OP_N, x.shape[1]
    if x.T.flags.c_contiguous:
        return OP_T, x.shape[0]
    return None


class BoundGemm:
    """A libcublas GEMM ``function`` with its ``arguments`` built once; called
    with a stream, it runs on its handle's, which ``prepare`` set."""

    def __init__(self, function: Callable[..., int], arguments: tuple) -> None:
        self.function, self.arguments = function, arguments

    def __call__(self, stream: int) -> None:
        _check(self.function(*self.arguments), "gemm")


def _check(status: int, call: str) -> None:
    if status != 0:
        raise RuntimeError(f"cublas{call} failed with status {status}")


@functools.cache
def captured_cublas() -> CapturedCublas:
    """The process's one CapturedCublas, made on first use."""
    return CapturedCublas()

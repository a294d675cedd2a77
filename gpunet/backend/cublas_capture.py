"""libcublas's own GEMM for the products of a recorded step, captured or not.

CuPy's cuBLAS bindings refuse to run under capture: every one, ``sgemm`` and
``gemmEx`` included, first calls ``_setStream``, and ``setStream`` raises
while the stream captures (cupy_backends/cuda/libs/cublas.pyx: ``setStream``,
``_setStream``, ``sgemm``). ``CapturedCublas`` calls libcublas through ctypes
instead, its handle's stream and workspace set once before the step, so a
graph step and the same step run eagerly make the very same calls. A product
may read an operand through a pointer held on the device (a graph step's
first input row, which moves each step): a batched call of one product, over
arrays of pointers (``cublasSgemmBatched``); a backward stage's two products
are one grouped call (``cublasSgemmGroupedBatched``, CUDA 12.5 and later). The
arrays of pointers are made on first use, outside any capture, and kept.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Any

import cupy
import numpy as np

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
        self.batched = {np.dtype(np.float32): library.cublasSgemmBatched,
                        np.dtype(np.float64): library.cublasDgemmBatched}
        self.grouped = ({np.dtype(np.float32): library.cublasSgemmGroupedBatched,
                         np.dtype(np.float64): library.cublasDgemmGroupedBatched}
                        if hasattr(library, "cublasSgemmGroupedBatched") else None)
        self.set_workspace = library.cublasSetWorkspace_v2
        self.scalars = {dtype: (np.ones(1, dtype), np.zeros(1, dtype))  # alpha, beta on the host
                        for dtype in self.functions}
        self.workspace: Array | None = None
        self.pointers: dict[tuple[int, ...], Array] = {}  # device arrays of pointers, by value
        self.groups: dict[tuple, tuple] = {}  # a grouped call's host arrays, by its problems

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

    def gemm(self, a: Array, b: Array, out: Array, rows: list[int] | None = None) -> None:
        """out = a b of C-contiguous matrices or transposes of them: in cuBLAS's
        column-major terms out^T = b^T a^T, each operand's memory read as it
        lies (op N) or transposed (op T). ``rows``: for a and b, the device
        address of a pointer to read that operand from instead of its own (0:
        its own; None: both their own); a graph step's state[ROWS], its batch's
        first input row."""
        (op_b, op_a, n, m, k, ld_b, ld_a), one, zero = _problem(a, b, out), *self.scalars[out.dtype]
        pointer, handle = ctypes.c_void_p, cupy.cuda.device.get_cublas_handle()
        if not rows or rows == [0, 0]:
            _check(self.functions[out.dtype](
                pointer(handle), op_b, op_a, n, m, k, pointer(one.ctypes.data),
                pointer(b.data.ptr), ld_b, pointer(a.data.ptr), ld_a,
                pointer(zero.ctypes.data), pointer(out.data.ptr), n), "gemm")
            return
        b_at, a_at, out_at = (rows[1] or self._pointers(b.data.ptr),
                              rows[0] or self._pointers(a.data.ptr), self._pointers(out.data.ptr))
        _check(self.batched[out.dtype](
            pointer(handle), op_b, op_a, n, m, k, pointer(one.ctypes.data), pointer(b_at), ld_b,
            pointer(a_at), ld_a, pointer(zero.ctypes.data), pointer(out_at), n, 1), "GemmBatched")

    def gemm_group(self, products: list[tuple[Array, Array, Array]]) -> bool:
        """Each (a, b, out) of ``products`` as ``gemm`` computes it, in one
        grouped call of one product per group; False, nothing run, where
        libcublas has no grouped call (before CUDA 12.5)."""
        if self.grouped is None:
            return False
        dtype = products[0][2].dtype
        key = tuple((a.data.ptr, b.data.ptr, out.data.ptr, a.shape, b.shape, a.strides, b.strides)
                    for a, b, out in products)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = self._group(products)
        pointer = ctypes.c_void_p
        _check(self.grouped[dtype](pointer(cupy.cuda.device.get_cublas_handle()), *group),
               "GemmGroupedBatched")
        return True

    def _group(self, products: list[tuple[Array, Array, Array]]) -> tuple:
        """The arguments of a grouped call after its handle: host arrays of each
        group's ops, sizes, scalars and leading dimensions, device arrays of
        pointers, the group count and sizes (all ones)."""
        dtype, count = products[0][2].dtype, len(products)
        problems = [_problem(a, b, out) for a, b, out in products]
        ints = [(ctypes.c_int * count)(*column) for column in zip(*problems)]
        op_b, op_a, n, m, k, ld_b, ld_a = ints
        scalar = np.ctypeslib.as_ctypes_type(dtype) * count
        alphas, betas = scalar(*[1] * count), scalar(*[0] * count)
        arrays = [self._pointers(*(x.data.ptr for x in column)) for column in
                  zip(*((b, a, out) for a, b, out in products))]
        pointer = ctypes.c_void_p
        return (op_b, op_a, n, m, k, alphas, pointer(arrays[0]), ld_b, pointer(arrays[1]), ld_a,
                betas, pointer(arrays[2]), n, count, (ctypes.c_int * count)(*[1] * count))

    def _pointers(self, *addresses: int) -> int:
        """The device address of an array holding ``addresses`` (uint64), made
        once (outside a capture: the first run of a step is eager)."""
        array = self.pointers.get(addresses)
        if array is None:
            array = self.pointers[addresses] = cupy.asarray(np.array(addresses, np.uint64))
        return array.data.ptr


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


def _check(status: int, call: str) -> None:
    if status != 0:
        raise RuntimeError(f"cublas{call} failed with status {status}")


@functools.cache
def captured_cublas() -> CapturedCublas:
    """The process's one CapturedCublas, made on first use."""
    return CapturedCublas()

"""The libcublas calls of a recorded step (``CapturedCublas``), checked against
a libcublas of Python: each call's arguments are read as cuBLAS reads them
(column-major, leading dimensions, operations, scalars and arrays of pointers
at their addresses) from host memory, so the products come out right only if
gpunet passes what cuBLAS expects. CuPy is a stand-in whose arrays are NumPy's."""
from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest

from helpers.backend_files import fresh_backend_module

OP_N, OP_T = 0, 1


class Array(np.ndarray):
    """A NumPy array that answers ``.data.ptr`` as a CuPy array does."""

    @property
    def data(self):  # noqa: D401 - CuPy's attribute
        return types.SimpleNamespace(ptr=self.ctypes.data)


def device(x) -> Array:
    return np.ascontiguousarray(x).view(Array)


def read(address: int, dtype, count: int) -> np.ndarray:
    """``count`` values of ``dtype`` at ``address`` (a view, writable)."""
    if count == 0:
        return np.zeros(0, dtype)
    buffer = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(address)
    return np.frombuffer(buffer, dtype)


def value(x) -> int:
    return x.value if isinstance(x, ctypes.c_void_p) else int(x)


def matrix(address: int, op: int, rows: int, columns: int, ld: int, dtype) -> np.ndarray:
    """op(X), rows x columns, of the column-major X at ``address`` with leading dimension ``ld``."""
    stored = (rows, columns) if op == OP_N else (columns, rows)
    flat = read(address, dtype, ld * (stored[1] - 1) + stored[0] if stored[1] else 0)
    x = np.lib.stride_tricks.as_strided(flat, stored, (dtype.itemsize, ld * dtype.itemsize))
    return x if op == OP_N else x.T


def gemm_reference(dtype, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) -> None:
    """C = alpha op(A) op(B) + beta C, as cuBLAS defines it (column-major)."""
    product = matrix(a, op_a, m, k, lda, dtype) @ matrix(b, op_b, k, n, ldb, dtype)
    out = np.lib.stride_tricks.as_strided(read(c, dtype, ldc * (n - 1) + m), (m, n),
                                          (dtype.itemsize, ldc * dtype.itemsize))
    out[...] = alpha * product + beta * out


class PythonCublas:
    """libcublas's GEMMs, each recording its call."""

    def __init__(self, dtype) -> None:
        self.dtype, self.calls = np.dtype(dtype), []

    def scalar(self, pointer) -> float:
        return read(value(pointer), self.dtype, 1)[0]

    def gemm(self, handle, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) -> int:
        self.calls.append("gemm")
        gemm_reference(self.dtype, op_a, op_b, m, n, k, self.scalar(alpha), value(a), lda,
                       value(b), ldb, self.scalar(beta), value(c), ldc)
        return 0

    def batched(self, handle, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                count) -> int:
        self.calls.append("batched")
        for i in range(count):
            at = [int(read(value(p), np.uint64, count)[i]) for p in (a, b, c)]
            gemm_reference(self.dtype, op_a, op_b, m, n, k, self.scalar(alpha), at[0], lda,
                           at[1], ldb, self.scalar(beta), at[2], ldc)
        return 0

    def grouped(self, handle, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                groups, sizes) -> int:
        self.calls.append("grouped")
        total = sum(sizes[g] for g in range(groups))
        pointers = [read(value(p), np.uint64, total) for p in (a, b, c)]
        i = 0
        for g in range(groups):
            for _ in range(sizes[g]):
                gemm_reference(self.dtype, op_a[g], op_b[g], m[g], n[g], k[g], alpha[g],
                               int(pointers[0][i]), lda[g], int(pointers[1][i]), ldb[g],
                               beta[g], int(pointers[2][i]), ldc[g])
                i += 1
        return 0


@pytest.fixture(params=[np.float32, np.float64])
def cublas(request, monkeypatch):
    """(CapturedCublas over PythonCublas, the PythonCublas, the dtype)."""
    cupy = types.ModuleType("cupy")
    cupy.asarray = device
    cupy.cuda = types.SimpleNamespace(device=types.SimpleNamespace(get_cublas_handle=lambda: 7))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    module = fresh_backend_module("cublas_capture.py", "gpunet.backend._cublas_capture_over_python")
    library, dtype = PythonCublas(request.param), np.dtype(request.param)
    captured = object.__new__(module.CapturedCublas)
    captured.functions, captured.batched = {dtype: library.gemm}, {dtype: library.batched}
    captured.grouped = {dtype: library.grouped}
    captured.scalars = {dtype: (np.ones(1, dtype), np.zeros(1, dtype))}
    captured.pointers, captured.groups = {}, {}
    return captured, library, dtype


def draw(shape, dtype, seed) -> Array:
    return device(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def operand(x: Array, transposed: bool) -> Array:
    """``x``'s values as C-order memory, or as the transposed view of a C-order array."""
    return device(x.T).T if transposed else x


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_is_the_product_for_every_transpose(cublas, trans_a, trans_b):
    captured, library, dtype = cublas
    a, b, out = draw((5, 3), dtype, 0), draw((3, 4), dtype, 1), device(np.zeros((5, 4), dtype))
    captured.gemm(operand(a, trans_a), operand(b, trans_b), out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-6)
    assert library.calls == ["gemm"]


@pytest.mark.parametrize("which", ["a", "b"])
def test_gemm_reads_an_operand_through_the_states_pointer(cublas, which):
    """A graph step's batch: rows offset.. of the epoch's data, through state[ROWS]."""
    from gpunet.backend.graph_step import ROWS, graph_state

    captured, library, dtype = cublas
    data, offset, batch = draw((10, 6), dtype, 2), 4, 3
    state = device(graph_state(offset, 0, 0, data.ctypes.data + offset * data.strides[0]))
    slot = state.ctypes.data + ROWS * state.itemsize
    rows = data[offset:offset + batch]
    if which == "a":  # the first layer's forward product: x W^T
        w, out = draw((5, 6), dtype, 3), device(np.zeros((batch, 5), dtype))
        captured.gemm(data[:batch], w.T, out, [slot, 0])
        expected = rows @ w.T
    else:  # its weight gradient: dz^T x
        dz, out = draw((batch, 5), dtype, 4), device(np.zeros((5, 6), dtype))
        captured.gemm(dz.T, data[:batch], out, [0, slot])
        expected = dz.T @ rows
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert library.calls == ["batched"]


def test_gemm_group_is_a_backward_stages_two_products_in_one_call(cublas):
    captured, library, dtype = cublas
    dz, h, w = draw((4, 3), dtype, 5), draw((4, 6), dtype, 6), draw((3, 6), dtype, 7)
    w_grad, down = device(np.zeros((3, 6), dtype)), device(np.zeros((4, 6), dtype))
    for _ in range(2):  # the second call reuses the first's arrays
        assert captured.gemm_group([(dz.T, h, w_grad), (dz, w, down)])
    np.testing.assert_allclose(w_grad, dz.T @ h, rtol=1e-6)
    np.testing.assert_allclose(down, dz @ w, rtol=1e-6)
    assert library.calls == ["grouped", "grouped"] and len(captured.groups) == 1


def test_without_a_grouped_gemm_the_group_runs_nothing(cublas):
    captured, library, dtype = cublas
    captured.grouped = None  # libcublas before CUDA 12.5
    dz = draw((2, 2), dtype, 8)
    assert not captured.gemm_group([(dz, dz, device(np.zeros((2, 2), dtype)))])
    assert library.calls == []

"""The libcublas calls of a recorded step (``CapturedCublas``), checked against
a libcublas of Python: each call's arguments are read as cuBLAS reads them
(column-major, leading dimensions, operations, scalars at their addresses)
from host memory, so the products come out right only if
gpunet passes what cuBLAS expects. CuPy is a stand-in whose arrays are NumPy's."""
from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest

from benchmarks.backend_files import fresh_backend_modules

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


@pytest.fixture(params=[np.float32, np.float64])
def cublas(request, monkeypatch):
    """(CapturedCublas over PythonCublas, the PythonCublas, the dtype)."""
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(device=types.SimpleNamespace(get_cublas_handle=lambda: 7))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    (module,) = fresh_backend_modules("cublas_capture.py")
    library, dtype = PythonCublas(request.param), np.dtype(request.param)
    captured = object.__new__(module.CapturedCublas)
    captured.functions = {dtype: library.gemm}
    captured.scalars = {dtype: (np.ones(1, dtype), np.zeros(1, dtype))}
    captured.calls = {}
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


def test_a_products_arguments_are_built_once(cublas):
    """The same operands again reuse the first call's arguments; new ones are a
    new call's, each product right."""
    captured, library, dtype = cublas
    a, b, out = draw((4, 3), dtype, 5), draw((3, 6), dtype, 6), device(np.zeros((4, 6), dtype))
    for _ in range(2):
        captured.gemm(a, b, out)
    other = device(np.zeros((6, 6), dtype))
    captured.gemm(b.T, b, other)
    np.testing.assert_allclose(out, a @ b, rtol=1e-6)
    np.testing.assert_allclose(other, b.T @ b, rtol=1e-6)
    assert library.calls == ["gemm"] * 3 and len(captured.calls) == 2

"""The NumPy backend's thin matrix products in C (``host_gemm.c``), where the CPU
has AVX-512F and the C is on (``use_host_c``): about 1.8x and 1.3x OpenBLAS's speed
on the first layer's two products of the deep model at batch 128. Each element's
sum has one order fixed by the shapes (host_gemm.c), so row blocks
(host_threads.py), thread counts and addresses leave the numbers as they are;
OpenBLAS's order is another, so these products differ from NumPy's in the last
bits. Elsewhere, and for products of at most GEMM_WORK multiply-adds or not thin
(THIN), NumPy's.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from . import host_c

# Multiply-adds up to which a product stays NumPy's: up to 100^3 OpenBLAS runs its
# small-matrix kernels (interface/gemm.c, SMALL_MATRIX_OPT), faster than these (the
# deep model's first product at 32 rows: 11.8 against 16.2 µs; at 48 rows, past them,
# 36.3 against 21.8), as is NumPy's call on anything smaller.
GEMM_WORK = 100 ** 3
# The kernels take thin products: ``a b^T`` of at most THIN columns summing at least
# THIN terms, and ``a^T b`` or ``a b`` of at most THIN rows and at least THIN columns.
# There, on the AVX-512 Xeon, they took 0.53-0.79 of OpenBLAS's time (the deep model's
# first layer at batch 48 to 1024, the wide model's last); the wide model's larger
# products took 0.83-1.33 of it, and sums of 10 or 30 terms, or 30 columns, 1.6-2x
# (docs/benchmarks.md).
THIN = 64
F32 = np.dtype(np.float32)
_buffer, _addressof = ctypes.c_char.from_buffer, ctypes.addressof


@functools.cache
def kernels() -> ctypes.CDLL | None:
    """The C library where its products run on this CPU; else None."""
    lib = host_c.library()
    return lib if type(lib) is ctypes.CDLL and lib.gemm_ready() else None


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, *,
            rows: int | None = None) -> np.ndarray:
    """a b of two float32 matrices by host_gemm.c where its kernels take them (a's
    rows or columns, b's rows contiguous, or a's rows and b's columns; thin, as
    THIN says; ``out`` C-contiguous and apart from both; more than GEMM_WORK
    multiply-adds), into ``out`` if given; else NumPy's. ``rows``: where a b is a
    block of rows of a larger product (host_threads.py), that product's rows, by
    which its size and thinness are judged, so that all its blocks go one way."""
    lib = kernels()
    (m, k), n = a.shape, b.shape[1]
    whole = m if rows is None else rows
    if (lib is None or whole * k * n <= GEMM_WORK or a.dtype != F32 or b.dtype != F32
            or b.shape[0] != k):
        return np.matmul(a, b, out=out)
    (a0, a1), (b0, b1) = a.strides, b.strides
    dots = (n <= THIN <= k and a1 == 4 and b0 == 4 and a0 > 0 and b1 > 0
            and not (a0 | b1) & 3)  # a (b^T)^T
    axpys = (whole <= THIN <= n and b1 == 4 and b0 > 0 and not b0 & 3
             and (a1 == 4 and a0 > 0 and not a0 & 3 or a0 == 4 and a1 > 0 and not a1 & 3))
    if out is None:
        out = np.empty((m, n), F32)
    elif out.shape != (m, n) or out.dtype != F32 or not out.flags.c_contiguous:
        dots = axpys = False
    if not (dots or axpys):
        return np.matmul(a, b, out=out)
    # the operands' addresses: ctypes' from_buffer where C-contiguous and writable (a
    # third of ``ctypes.data``'s time, and no Python call), else ``ctypes.data``
    at = [a if a1 == 4 else a.T, b.T if dots else b, out]
    for i, matrix in enumerate(at):
        at[i] = (_addressof(_buffer(matrix)) if matrix.flags.c_contiguous
                 and matrix.flags.writeable else matrix.ctypes.data)
    pa, pb, pc = at
    ends = pc + 4 * m * n  # where out ends; then whether a or b lies partly in it
    if (pa < ends and pc < pa + (m - 1) * a0 + (k - 1) * a1 + 4
            or pb < ends and pc < pb + (k - 1) * b0 + (n - 1) * b1 + 4):
        return np.matmul(a, b, out=out)
    if dots:
        lib.gemm_dots(pa, pb, pc, m, n, k, a0 >> 2, b1 >> 2, n)
    else:
        sr, sp = (1, a0 >> 2) if a1 == 4 else (a1 >> 2, 1)
        lib.gemm_axpys(pa, pb, pc, m, n, k, sr, sp, b0 >> 2, n)
    return out

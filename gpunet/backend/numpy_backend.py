"""The CPU backend: the generic operations of ``Backend`` on NumPy arrays, some in C."""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import host_gemm, host_replay
from .base import Array, Backend
from .graph_step import Replay
from .host_operations import HostOperations
from .host_threads import SPLIT_WORK, RowBlockProducts
from .planned_step import TargetClasses

ALIGNMENT = 64  # bytes: where ``empty``'s arrays start


class NumpyBackend(HostOperations, Backend):
    """NumPy's arrays; some operations in C where a C compiler is at hand
    (``host_operations.py``), the same numbers as NumPy's."""

    name = "numpy"
    xp = np
    array_type = np.ndarray
    # A graph step replayed as bound calls, its stages compiled C (host_replay.py),
    # where a C compiler is at hand; else as recorded. "auto" takes the first.
    GRAPH_GEMMS = ("host", "stand-in")
    AUTO_GRAPH_GEMMS = ("host",)

    def __init__(self) -> None:
        super().__init__()
        self.products = RowBlockProducts()

    def use_threads(self, count: int) -> None:
        """``count`` threads share each large product's row blocks, each block one
        BLAS thread's (host_threads.py): the numbers do not depend on ``count``."""
        self.products.use_threads(count)

    def threads_in_use(self) -> str:
        return str(self.products)

    def empty(self, shape: int | tuple[int, ...], dtype: Any) -> Array:
        """``Backend.empty``, starting on a 64-byte boundary (a cache line, an
        AVX-512 vector), so that host_gemm.c's loads of a row do not straddle
        lines: the first product of the deep model at batch 128 took 53 µs with
        its weights so placed, 67 without (NumPy's 16)."""
        dtype = np.dtype(dtype)
        size = int(np.prod(shape)) * dtype.itemsize
        raw = np.empty(size + ALIGNMENT, np.uint8)
        start = -raw.ctypes.data % ALIGNMENT
        return raw[start:start + size].view(dtype).reshape(shape)

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        """a b: host_gemm.c's where the C is on and takes it, else NumPy's; a large
        product in row blocks (host_threads.py)."""
        work = a.shape[0] * a.shape[1] * b.shape[1]
        if not self.host_c_on or work <= host_gemm.GEMM_WORK:
            product = np.matmul
        else:  # row blocks (below) each judged as the whole product
            product = functools.partial(host_gemm.product, rows=a.shape[0])
        if work < SPLIT_WORK:  # one block: one call, direct
            return product(a, b, out=out)
        return self.products.matmul(a, b, out, product)

    def capture(self, record: Replay, gemm: str) -> Replay:
        if gemm == "host":
            return host_replay.capture(self, record, self.host_library())
        return super().capture(record, gemm)

    def dense_softmax_cross_entropy(self, z: Array, bias: Array, a: Array, scale: float,
                                    gradient: Array, losses: Array, hits: Array, db: Array,
                                    state: Array | None = None,
                                    classes: TargetClasses | None = None) -> None:
        with np.errstate(over="ignore"):  # as softmax_cross_entropy (host_operations.py)
            super().dense_softmax_cross_entropy(z, bias, a, scale, gradient, losses, hits, db,
                                                state, classes)

"""The CPU backend: the generic operations of ``Backend`` on NumPy arrays, some in C."""
from __future__ import annotations

import numpy as np

from . import host_replay
from .base import Array, Backend
from .graph_step import Replay
from .host_operations import HostOperations
from .host_threads import SPLIT_WORK, RowBlockProducts
from .planned_step import TargetClasses


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

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        if a.shape[0] * a.shape[1] * b.shape[1] < SPLIT_WORK:  # one block: one call, direct
            return np.matmul(a, b, out=out)
        return self.products.matmul(a, b, out)

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

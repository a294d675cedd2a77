"""Matrix products: ``gemm``, which the eager Linear layer and a planned step both call."""
from __future__ import annotations

from typing import Any

from .graph_step import StateRows

Array = Any


class MatrixProducts:
    """Mixed into ``Backend``: written once against ``self.xp``."""

    xp: Any
    state_rows: Any  # GraphStepOperations'

    def gemm(self, a: Array, b: Array, out: Array | None = None, *, trans_a: bool = False,
             trans_b: bool = False, aside: bool = False) -> Array:
        """op(a) op(b) of two matrices, into ``out`` if given; op(m) = m^T where
        its flag is set; ``a`` or ``b`` may be a graph step's ``StateRows``. A
        product over one row (a^T b for one-row a and b) is an outer product,
        3x faster than a GEMM. ``aside``: nothing in a recorded step reads
        ``out`` before its update, so a device may compute it beside the work
        that follows (CupyBackend's CUDA graph); here it changes nothing."""
        a = self.state_rows(a) if type(a) is StateRows else a
        b = self.state_rows(b) if type(b) is StateRows else b
        a = a.T if trans_a else a
        b = b.T if trans_b else b
        if a.shape[1] == 1:
            return self.xp.multiply(a, b, out=out)
        return self.matmul(a, b, out)

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        """a b of two matrices, into ``out`` if given: ``gemm``'s product."""
        return self.xp.matmul(a, b, out=out)

"""The host's threads: matrix products whose numbers do not depend on them.

OpenBLAS divides a product among its threads differently for each thread count,
so the same product rounds differently with one thread and with two: after three
epochs of the deep model, 86% of its first layer's weights differed in the last
bits. gpunet computes a large product instead as fixed blocks of rows, each block
one single-threaded BLAS call, shared among a pool of threads as they come free.
The blocks depend on the shapes alone, so any thread count, and any load on the
other cores, gives the same numbers.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

BLOCK_ROWS = 64       # rows of a block
SPLIT_WORK = 1 << 22  # multiply-adds: a product with fewer is one call (sharing gains nothing)


def row_blocks(rows: int, work: int) -> list[slice]:
    """The row blocks of a product with ``rows`` rows and ``work`` multiply-adds."""
    if work < SPLIT_WORK or rows < 2 * BLOCK_ROWS:
        return [slice(0, rows)]
    return [slice(start, min(start + BLOCK_ROWS, rows)) for start in range(0, rows, BLOCK_ROWS)]


class Helpers:
    """``count`` daemon threads that run a task beside the caller: handing one over
    through a SimpleQueue costs about 16 us here, ThreadPoolExecutor's 40."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._inboxes = [queue.SimpleQueue() for _ in range(count)]
        for inbox in self._inboxes:
            threading.Thread(target=self._serve, args=(inbox,), name="gpunet-product",
                             daemon=True).start()

    def _serve(self, inbox: queue.SimpleQueue) -> None:
        while (task := inbox.get()) is not None:
            try:
                task()
                self._done.put(None)
            except BaseException as exc:  # handed to the caller, which raises it
                self._done.put(exc)

    def run(self, task: Callable[[], None], helpers: int) -> None:
        """``task`` on the caller and on ``helpers`` of the threads at once; returns
        when every one has finished, raising the first error any of them met."""
        for inbox in self._inboxes[:helpers]:
            inbox.put(task)
        errors: list[BaseException] = []
        try:
            task()
        finally:
            for _ in range(helpers):
                if (error := self._done.get()) is not None:
                    errors.append(error)
        if errors:
            raise errors[0]

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)


class RowBlockProducts:
    """a b for NumPy matrices, in ``row_blocks`` shared among ``workers`` threads,
    each block one call of a product (NumPy's, a one-thread BLAS call when
    ``use_threads`` has set the BLAS so, or host_gemm.py's)."""

    def __init__(self) -> None:
        self.workers = 1
        self._helpers: Helpers | None = None

    def use_threads(self, count: int) -> None:
        """``count`` threads share the blocks, each with one BLAS thread; OpenMP gets ``count``."""
        threadpool_limits(1, user_api="blas")
        threadpool_limits(count, user_api="openmp")
        if self._helpers is not None and self._helpers.count != count - 1:
            self._helpers.close()
            self._helpers = None
        self.workers = count

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
               product: Callable[..., np.ndarray] = np.matmul) -> np.ndarray:
        """a b, each row block ``product(a[rows], b, out=out[rows])``."""
        blocks = row_blocks(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1])
        if len(blocks) == 1:
            return product(a, b, out=out)
        if out is None:
            out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
        todo = iter(blocks)  # taken a block at a time by whichever thread is free

        def take_blocks() -> None:
            for rows in todo:
                product(a[rows], b, out=out[rows])

        if self.workers == 1:
            take_blocks()
        else:
            if self._helpers is None:
                self._helpers = Helpers(self.workers - 1)
            self._helpers.run(take_blocks, min(self.workers, len(blocks)) - 1)
        return out

    def __str__(self) -> str:
        return f"products in row blocks, {threads_in_use()}"


def threads_in_use() -> str:
    """The threads each kind of pool really uses, e.g. "BLAS 1 (openblas), OpenMP none"."""
    pools: dict[str, dict[str, int]] = {"BLAS": {}, "OpenMP": {}}
    for pool in threadpool_info():
        kind = "BLAS" if pool["user_api"] == "blas" else "OpenMP"
        pools[kind][pool["internal_api"]] = pool["num_threads"]
    return ", ".join(
        f"{kind} " + (" ".join(f"{n} ({library})" for library, n in sorted(found.items()))
                      if found else "none")
        for kind, found in pools.items())


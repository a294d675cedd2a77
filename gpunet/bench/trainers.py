"""gpunet as a benchmark trainer: one step on a fixed batch, or one epoch over the data."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import seeding
from ..backend import Backend
from ..functional import one_hot_encode
from ..losses import SoftmaxCrossEntropy
from ..models import NOTEBOOK_RATES, mnist_model
from ..optimizers import Momentum
from ..train.epoch import steps
from ..train.metrics import EpochMetrics


def mnist_like(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-shaped samples: centred, scaled float32 pixels and int labels
    (throughput does not depend on the values)."""
    rng = np.random.default_rng(seed)
    x = ((rng.integers(0, 256, (n, 784)) - 33.3) / 256).astype(np.float32)
    return x, rng.integers(0, 10, n)


class GpunetTrainer:
    """The notebook's model, loss (softmax cross-entropy) and momentum on a gpunet backend,
    with the data resident on the device; with ``graph="on"`` ("gpunet graph") its
    epochs replay each full batch's planned step as a graph."""

    def __init__(self, model: str, batch_size: int, x: np.ndarray, labels: np.ndarray,
                 backend: Backend, seed: int = 0, graph: str = "auto") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        seeding.seed(seed)
        self.name = "gpunet graph" if graph == "on" else "gpunet"
        self.device, self.backend, self.graph = backend.name, backend, graph
        self.model = mnist_model(model, backend=backend)
        self.loss = SoftmaxCrossEntropy()
        self.optimizer = Momentum(*NOTEBOOK_RATES)
        self.x = backend.asarray(x)
        self.y = one_hot_encode(labels, backend=backend)
        self.batch_size = batch_size
        # a step's batch: the same arrays each step, so the step captured (a graph
        # replay holds the arrays it reads) is replayed, not captured anew each time
        self.batch = self.x[:batch_size], self.y[:batch_size]
        self.step_path: str | None = None  # how the last epoch's full batches ran

    def step(self) -> None:
        """One step: an epoch of the first batch, run as ``graph`` says."""
        for _ in steps(self.model, self.loss, self.optimizer, *self.batch, self.batch_size,
                       graph=self.graph):
            pass

    def epoch(self) -> None:
        """One epoch; ``step_path`` then says how its full batches ran."""
        metrics = EpochMetrics(self.backend, len(self.x), self.batch_size)
        for _ in steps(self.model, self.loss, self.optimizer, self.x, self.y, self.batch_size,
                       graph=self.graph, metrics=metrics):
            pass
        self.step_path = metrics.step_path

    def synchronize(self) -> None:
        self.backend.synchronize()


def step_memory(trainer: Any) -> tuple[int | None, str | None]:
    """The memory a training step needs beyond what was allocated before it,
    after a warm-up step (which fills caches such as the block of uniform
    draws), as ``(bytes, how it was measured)``; ``(None, None)`` where nothing
    sees the allocations (PyTorch on the CPU)."""
    trainer.step()
    if trainer.device in ("numpy", "python"):
        import tracemalloc
        tracemalloc.start()
        try:
            trainer.step()
            return tracemalloc.get_traced_memory()[1], "tracemalloc peak"
        finally:
            tracemalloc.stop()
    if trainer.device == "cupy":
        # CuPy's pool keeps no high-water mark (cupy/cuda/memory.pyx): what it
        # grows by in a step from an emptied pool bounds the step's peak from above.
        import cupy
        pool = cupy.get_default_memory_pool()
        trainer.synchronize()
        pool.free_all_blocks()
        before = pool.total_bytes()
        trainer.step()
        trainer.synchronize()
        return pool.total_bytes() - before, "CuPy pool growth"
    if trainer.device == "cuda":
        import torch
        trainer.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        trainer.step()
        trainer.synchronize()
        return torch.cuda.max_memory_allocated() - before, "PyTorch peak allocated"
    return None, None

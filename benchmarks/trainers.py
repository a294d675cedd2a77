"""gpunet as a benchmark trainer: one step on a fixed batch, or one epoch over the data."""
from __future__ import annotations

from typing import Any

import numpy as np

import gpunet
from gpunet.backend import Backend
from gpunet.training import steps

MODELS = ("logistic", "deep", "wide")
LEARNING_RATE, MOMENTUM = 0.01, 0.99


def mnist_like(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-shaped samples: centred, scaled float32 pixels and int labels
    (throughput does not depend on the values)."""
    rng = np.random.default_rng(seed)
    x = ((rng.integers(0, 256, (n, 784)) - 33.3) / 256).astype(np.float32)
    return x, rng.integers(0, 10, n)


class GpunetTrainer:
    """The notebook's model, loss (softmax cross-entropy) and momentum on a gpunet backend,
    with the data resident on the device."""

    def __init__(self, model: str, batch_size: int, x: np.ndarray, labels: np.ndarray,
                 backend: Backend, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        gpunet.seed(seed)
        self.name, self.device, self.backend = "gpunet", backend.name, backend
        self.model = gpunet.mnist_model(model, backend=backend)
        self.loss = gpunet.SoftmaxCrossEntropy()
        self.optimizer = gpunet.Momentum(LEARNING_RATE, MOMENTUM)
        self.x = backend.asarray(x)
        self.y = gpunet.one_hot_encode(labels, backend=backend)
        self.batch_size = batch_size

    def step(self) -> None:
        b = self.batch_size
        for _ in steps(self.model, self.loss, self.optimizer, self.x[:b], self.y[:b], b):
            pass

    def epoch(self) -> None:
        for _ in steps(self.model, self.loss, self.optimizer, self.x, self.y, self.batch_size):
            pass

    def synchronize(self) -> None:
        self.backend.synchronize()


def peak_step_memory(trainer: Any) -> int | None:
    """Bytes allocated at the peak of one training step: traced host allocations
    on the CPU (NumPy and plain Python report to tracemalloc), the CuPy pool's
    high-water mark on a GPU; None where neither sees the allocations (PyTorch CPU)."""
    if trainer.device in ("numpy", "python"):
        import tracemalloc
        tracemalloc.start()
        try:
            trainer.step()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    if trainer.device == "cupy":
        import cupy
        pool = cupy.get_default_memory_pool()
        pool.free_all_blocks()
        before = pool.used_bytes()
        trainer.step()
        trainer.synchronize()
        return pool.total_bytes() - before
    if trainer.device == "cuda":
        import torch
        torch.cuda.reset_peak_memory_stats()
        trainer.step()
        trainer.synchronize()
        return torch.cuda.max_memory_allocated()
    return None

"""XOR: the notebook's first network, 2-2-1 with a sigmoid hidden layer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import seeding
from ..backend import Backend, get_backend
from ..layers import Linear, Sequential, Sigmoid
from ..losses import SSE
from ..optimizers import GradientDescent
from .loop import train_epochs

INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
TARGETS = [[0.0], [1.0], [1.0], [0.0]]


@dataclass
class XorResult:
    losses: list[float]        # summed squared error of each epoch
    predictions: np.ndarray    # the trained net's output for each of INPUTS
    model: Sequential

    @property
    def solved(self) -> bool:
        """Every prediction rounds to its target."""
        return bool(np.all(np.abs(self.predictions - np.ravel(TARGETS)) < 0.5))


def xor_net(backend: Backend) -> Sequential:
    return Sequential([Linear(2, 2, backend=backend), Sigmoid(), Linear(2, 1, backend=backend)])


def run_xor(epochs: int = 3000, batch_size: int = 1, learning_rate: float = 0.1, seed: int = 0,
            backend: str | Backend | None = None, progress: bool = False) -> XorResult:
    """Train XOR with the notebook's settings: SSE, gradient descent at 0.1, 3000 epochs."""
    backend = get_backend(backend)
    seeding.seed(seed)
    model = xor_net(backend)
    x, y = backend.asarray(INPUTS), backend.asarray(TARGETS)
    losses, _ = train_epochs(model, SSE(), GradientDescent(learning_rate), x, y, epochs=epochs,
                             batch_size=batch_size, label="xor", progress=progress)
    predictions = backend.to_numpy(model.forward(x)).ravel()
    return XorResult(losses, predictions, model)

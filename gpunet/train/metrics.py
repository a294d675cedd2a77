"""An epoch's training metrics, kept on the device as the steps run, and accuracy."""
from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from ..backend import Array, Backend, backend_of
from ..layers import Layer
from .checks import check_data


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__(f"the loss became non-finite in epoch {epoch} at step {step}; "
                         "try a smaller learning rate")
        self.epoch, self.step = epoch, step


class RankSums(Protocol):
    """The two collectives ``EpochMetrics.read`` needs (a ``Communicator`` has them)."""

    def sum(self, values: np.ndarray) -> np.ndarray: ...

    def minimum(self, value: int) -> int: ...


class EpochMetrics:
    """Each sample's loss and hit (whether its prediction was right), in the
    order the epoch takes the samples, in two device arrays. ``record`` queues
    two small kernels and reads nothing; ``read`` is the one read-back.
    ``step_path`` says how the full batches ran: "eager" (through the layers),
    "planned", or "graph (...)" with the graph's matrix products. With ``comm``
    (the ranks' collectives) each rank records its own rows, and ``read`` sums
    over the ranks; without, the sums are this process's."""

    def __init__(self, backend: Backend, samples: int, batch_size: int, epoch: int = 0,
                 comm: RankSums | None = None) -> None:
        self.backend, self.batch_size, self.epoch, self.comm = backend, batch_size, epoch, comm
        self.step_path = "eager"
        self.losses = backend.xp.zeros(samples, dtype="float64")
        self.hits = backend.xp.zeros(samples, dtype=bool)

    def record(self, rows: slice, predicted: Array, targets: Array, losses: Array) -> None:
        """Keep the losses and hits of the samples ``rows`` of the epoch's order."""
        self.losses[rows] = losses
        self.backend.matches(predicted, targets, out=self.hits[rows])

    def read(self, done: int) -> tuple[float, float]:
        """(mean loss, accuracy) over the first ``done`` samples; NonFiniteLoss
        naming the first step whose loss is not finite. A collective: every
        rank calls it, and all raise together."""
        xp = self.backend.xp
        sums = xp.stack([self.losses[:done].sum(), self.hits[:done].sum(dtype="float64")])
        sums = self.backend.to_numpy(sums)  # the one transfer
        loss_sum, hit_sum = (sums if self.comm is None else self.comm.sum(sums)).tolist()
        if not math.isfinite(loss_sum):
            bad = ~xp.isfinite(self.losses[:done])
            first = int(xp.argmax(bad)) if bool(bad.any()) else done
            first = first if self.comm is None else self.comm.minimum(first)
            raise NonFiniteLoss(self.epoch, first // self.batch_size + 1)
        return loss_sum / max(done, 1), hit_sum / max(done, 1)


def accuracy(model: Layer, inputs: Any, targets: Any) -> float:
    """The fraction of rows whose largest output is at the target's largest entry."""
    x, y = check_data(model, inputs, targets)
    return float(correct(model.forward(x), y)) / len(y)


def correct(predicted: Array, targets: Array) -> Array:
    """How many rows of ``predicted`` have their largest entry where ``targets``
    (on the same device) do: a 0-d array on the device."""
    return backend_of(predicted).matches(predicted, targets).sum()

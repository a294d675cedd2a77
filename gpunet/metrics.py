"""An epoch's training metrics, kept on the device as the steps run."""
from __future__ import annotations

import math

from .backend import Backend
from .training import Step


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__(f"the loss became non-finite in epoch {epoch} at step {step}; "
                         "try a smaller learning rate")
        self.epoch, self.step = epoch, step


class EpochMetrics:
    """Each sample's loss and hit (whether its prediction was right), in the
    order the epoch takes the samples, in two device arrays. ``record`` queues
    two small kernels and reads nothing; ``read`` is the one read-back."""

    def __init__(self, backend: Backend, samples: int, batch_size: int, epoch: int) -> None:
        self.backend, self.batch_size, self.epoch = backend, batch_size, epoch
        self.losses = backend.xp.zeros(samples, dtype="float64")
        self.hits = backend.xp.zeros(samples, dtype=bool)

    def record(self, step: Step) -> None:
        self.losses[step.rows] = step.losses
        self.backend.matches(step.predicted, step.targets, out=self.hits[step.rows])

    def read(self, done: int) -> tuple[float, float]:
        """(mean loss, accuracy) over the first ``done`` samples; NonFiniteLoss
        naming the first step whose loss is not finite."""
        losses = self.losses[:done]
        total = float(losses.sum())
        if not math.isfinite(total):
            xp = self.backend.xp
            first = int(xp.argmax(~xp.isfinite(losses)))
            raise NonFiniteLoss(self.epoch, first // self.batch_size + 1)
        return total / max(done, 1), int(self.hits[:done].sum()) / max(done, 1)

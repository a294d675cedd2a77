"""An epoch's training metrics, kept on the device as the steps run."""
from __future__ import annotations

import math

from .backend import Array, Backend
from .distributed.comm import Communicator


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__(f"the loss became non-finite in epoch {epoch} at step {step}; "
                         "try a smaller learning rate")
        self.epoch, self.step = epoch, step


class EpochMetrics:
    """Each sample's loss and hit (whether its prediction was right), in the
    order the epoch takes the samples, in two device arrays. ``record`` queues
    two small kernels and reads nothing; ``read`` is the one read-back.
    ``step_path`` says how the full batches ran: "eager" (through the layers),
    "planned", or "graph (...)" with the graph's matrix products. With ``comm``
    of several ranks each records its own rows, and ``read`` sums over the ranks."""

    def __init__(self, backend: Backend, samples: int, batch_size: int, epoch: int = 0,
                 comm: Communicator | None = None) -> None:
        self.backend, self.batch_size, self.epoch = backend, batch_size, epoch
        self.comm = Communicator() if comm is None else comm
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
        loss_sum, hit_sum = self.comm.sum(self.backend.to_numpy(sums)).tolist()  # the one transfer
        if not math.isfinite(loss_sum):
            bad = ~xp.isfinite(self.losses[:done])
            first = self.comm.minimum(int(xp.argmax(bad)) if bool(bad.any()) else done)
            raise NonFiniteLoss(self.epoch, first // self.batch_size + 1)
        return loss_sum / max(done, 1), hit_sum / max(done, 1)

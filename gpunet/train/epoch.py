"""One epoch: the loop over its batches, each trained by the step chosen for it.

The random-stream rule: an epoch's random draws (its shuffle order, then its
dropout masks) come from the backend's counter-based stream. A numbered epoch
(``epoch=k``: ``fit``, the experiments) first restarts that stream on epoch
k's own (``seeding.start_epoch``), so epoch k's draws depend only on the seed
and k and a resumed run repeats an uninterrupted one; with several ranks every
rank then takes rank 0's key. An unnumbered epoch continues the stream where it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .. import seeding
from ..backend import Array
from ..distributed.comm import Communicator
from ..distributed.shares import check_shares
from ..layers import Layer
from ..losses import Loss
from ..optimizers import Optimizer
from ..planning.graph import check_mode
from .checks import check_count, check_data, model_backend
from .metrics import EpochMetrics
from .step import choose_steps


@dataclass
class StepRows:  # not frozen: a frozen dataclass is made at 3x the cost
    """One step of an epoch: the rows of the epoch's order it took, and their
    losses (this rank's, ``mine`` of the epoch's metrics' ``epoch_losses``,
    left on the device), a view made only when asked for: on a GPU each view
    is host work a replayed step would wait on."""
    rows: slice
    epoch_losses: Array
    mine: slice

    @property
    def losses(self) -> Array:
        """This rank's losses of the step's rows: a view of the epoch's metrics."""
        return self.epoch_losses[self.mine]


def steps(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any,
          batch_size: int = 1, *, epoch: int | None = None, shuffle: bool = False,
          metrics: EpochMetrics | None = None, graph: str = "auto",
          comm: Communicator | None = None) -> Iterator[StepRows]:
    """Train on ``inputs``/``targets`` (N, D) once, ``batch_size`` rows a step,
    in order (or in a random order drawn on the device with ``shuffle``; the
    draws as the module says for ``epoch``), yielding after each step. With
    batch size 1 this is the notebook's loop. Each sample's loss and hit go into
    ``metrics`` (a new EpochMetrics if None), and how full batches ran into its
    ``step_path``.

    The data move once to the model's backend, so no step copies between host
    and device, and nothing is read back. Full batches run as a planned step
    (``gpunet.planning``) where the model allows, with the eager layers'
    numbers, replayed as a graph per ``graph`` ("on", "off", or "auto":
    ``planning.graph.graph_gemms``); others run through the layers (``step``).

    With ``comm`` of several ranks (``gpunet.distributed``), each rank takes its
    share of every batch, its dropout draws those of its rows in the whole
    batch's, and the gradients (of the loss's mean over the whole batch) are
    summed across the ranks before the update; the metrics get this rank's rows.
    The arguments are checked at the call (``check_data``, ValueError).
    """
    batch_size = check_count("batch_size", batch_size, 1)
    check_mode(graph)
    comm = Communicator() if comm is None else comm
    x, y = check_data(model, inputs, targets)
    if comm.size > 1:
        check_shares(len(x), batch_size, comm.size)
        if graph == "on":
            raise ValueError(f"graph replay runs one process, not {comm.size} ranks: "
                             "use graph 'auto' or 'off'")
    return _steps(model, loss, optimizer, x, y, batch_size, epoch, shuffle, metrics, graph, comm)


def _steps(model: Layer, loss: Loss, optimizer: Optimizer, x: Array, y: Array,
           batch_size: int, epoch: int | None, shuffle: bool, metrics: EpochMetrics | None,
           graph: str, comm: Communicator) -> Iterator[StepRows]:
    """``steps`` once its arguments are checked."""
    backend = model_backend(model, x)
    if epoch is not None:
        seeding.start_epoch(epoch)
        if comm.size > 1:  # one order and one set of masks, whether or not a seed was given
            backend.restart(comm.bcast(backend.key))
    if metrics is None:
        metrics = EpochMetrics(backend, len(x), batch_size, epoch or 0, comm)
    order = backend.permutation(len(x)) if shuffle else None
    full, tail = choose_steps(model, loss, optimizer, backend, x, y, batch_size, order, graph,
                              comm)
    for start in range(0, len(x), batch_size):
        rows = slice(start, min(start + batch_size, len(x)))
        step = full if rows.stop - rows.start == batch_size else tail
        mine = step.run(rows, metrics)
        if step is full:
            metrics.step_path = step.path
        yield StepRows(rows, metrics.losses, mine)


def train_epoch(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any,
                batch_size: int = 1, *, shuffle: bool = False, graph: str = "auto",
                epoch: int | None = None) -> Array:
    """Run ``steps`` for one epoch (``graph`` and ``epoch`` as there); returns the
    sum of the per-sample losses (the notebook's ``epoch_loss``, summed in
    float64) as a 0-d array left on the device."""
    batch_size = check_count("batch_size", batch_size, 1)
    x, y = check_data(model, inputs, targets)
    metrics = EpochMetrics(model_backend(model, x), len(x), batch_size, epoch or 0)
    for _ in steps(model, loss, optimizer, x, y, batch_size, epoch=epoch, shuffle=shuffle,
                   metrics=metrics, graph=graph):
        pass
    return metrics.losses.sum()

"""Mini-batch training: the steps of one epoch, forward, loss, backward and update."""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Iterator

from .backend import Array, Backend, backend_of
from .distributed.comm import Communicator
from .distributed.shares import check_shares, share
from .layers import Layer
from .losses import Loss
from .metrics import EpochMetrics
from .optimizers import Optimizer
from .planning import plan_step
from .planning.graph import check_mode, step_graph, uses_graph


@dataclass
class Step:
    """One training step: the rows of the epoch's order it took, and their
    losses (a view of the epoch's metrics, left on the device)."""
    rows: slice
    losses: Array


def steps(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any,
          batch_size: int = 1, *, shuffle: bool = False,
          metrics: EpochMetrics | None = None, graph: str = "auto",
          comm: Communicator | None = None) -> Iterator[Step]:
    """Train on ``inputs``/``targets`` (N, D) once, ``batch_size`` rows a step,
    in order (or in a random order drawn on the device with ``shuffle``),
    yielding after each step. With batch size 1 this is the notebook's loop.
    Each sample's loss and hit go into ``metrics`` (a new EpochMetrics if None),
    and the way full batches ran into its ``step_path``.

    The data move once to the model's backend (that of its first parameter),
    so no step copies between host and device, and nothing is read back. Full
    batches run as a planned step (``gpunet.planning``) where the model allows,
    with the eager layers' numbers, replayed as a graph per ``graph`` ("on",
    "off", or "auto": ``planning.graph.AUTO_ON_CUPY``); others run through the layers.

    With ``comm`` of several ranks (``gpunet.distributed``), each rank takes its
    share of every batch, its dropout draws those of its rows in the whole
    batch's, and the gradients (of the loss's mean over the whole batch) are
    summed across the ranks before the update; the metrics get this rank's rows.
    """
    batch_size = check_count("batch_size", batch_size, 1)
    check_mode(graph)
    comm = Communicator() if comm is None else comm
    backend = model_backend(model, inputs)
    x, y = backend.asarray(inputs), backend.asarray(targets)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"training needs inputs (N, D) and targets (N, K) with the same N, "
                         f"got shapes {x.shape} and {y.shape}")
    shared = comm.size > 1
    if shared:
        check_shares(len(x), batch_size, comm.size)
        if graph == "on":
            raise ValueError(f"graph replay runs one process, not {comm.size} ranks: "
                             "use graph 'auto' or 'off'")
    rows_here = _rows(share(slice(0, batch_size), comm.rank, comm.size))
    plan = (plan_step(model, loss, optimizer, backend, rows_here, batch_size)
            if len(x) >= batch_size else None)
    if plan is not None:  # as the layers take them, converted once
        x, y = backend.asarray(x, plan.dtype), backend.asarray(y, plan.dtype)
    if metrics is None:
        metrics = EpochMetrics(backend, len(x), batch_size, comm=comm)
    order = backend.permutation(len(x)) if shuffle else None
    replayed = (step_graph(plan) if plan is not None and not shared
                and uses_graph(graph, backend) else None)
    if replayed is not None:  # it gathers each batch in the order itself
        replayed.start_epoch(x, y, order, metrics)
    elif order is not None:
        x, y = x[order], y[order]
    reduce = comm.allreduce_gradients if shared else None
    try:
        for start in range(0, len(x), batch_size):
            rows = slice(start, min(start + batch_size, len(x)))
            mine = share(rows, comm.rank, comm.size)
            full = plan is not None and _rows(rows) == batch_size
            if shared:
                backend.shared_rows = (_rows(rows), mine.start - rows.start)
            if full and replayed is not None:
                replayed.step()
                metrics.step_path = replayed.path
            elif full:
                plan.run(x[mine], y[mine], metrics.losses[mine], metrics.hits[mine],
                         reduce=reduce)
                metrics.step_path = "planned"
            else:
                xb, yb = replayed.rows(rows) if replayed is not None else (x[mine], y[mine])
                predicted = model.forward(xb)
                losses, gradient = loss.sample_losses_and_gradient(predicted, yb, _rows(rows))
                model.backward_to_params(gradient)
                if reduce is not None:
                    reduce(model)
                optimizer.step(model)
                metrics.record(mine, predicted, yb, losses)
            yield Step(rows, metrics.losses[mine])
    finally:
        backend.shared_rows = None


def _rows(rows: slice) -> int:
    return rows.stop - rows.start


def train_epoch(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any,
                batch_size: int = 1, *, shuffle: bool = False, graph: str = "auto") -> Array:
    """Run ``steps`` for one epoch (``graph`` as there); returns the sum of the
    per-sample losses (the notebook's ``epoch_loss``, summed in float64) as a
    0-d array left on the device."""
    batch_size = check_count("batch_size", batch_size, 1)
    backend = model_backend(model, inputs)
    metrics = EpochMetrics(backend, len(inputs), batch_size)
    for _ in steps(model, loss, optimizer, inputs, targets, batch_size, shuffle=shuffle,
                   metrics=metrics, graph=graph):
        pass
    return metrics.losses.sum()


def accuracy(model: Layer, inputs: Any, targets: Any) -> float:
    """The fraction of rows whose largest output is at the target's largest entry."""
    predicted = model.forward(inputs)
    return float(correct(predicted, backend_of(predicted).asarray(targets))) / len(targets)


def model_backend(model: Layer, data: Any) -> Backend:
    """Where ``model`` computes: its parameters' backend, else that of ``data``."""
    params = model.params()
    return backend_of(params[0] if params else data)


def check_count(name: str, value: Any, minimum: int) -> int:
    """``value`` as a Python int: any integer ``operator.index`` takes (NumPy's too,
    bools not); ValueError unless it is one of at least ``minimum`` (0 or 1)."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be a {kind} integer, got {value!r}")
    return number


def correct(predicted: Array, targets: Array) -> Array:
    """How many rows of ``predicted`` have their largest entry where ``targets``
    (on the same device) do: a 0-d array on the device."""
    return backend_of(predicted).matches(predicted, targets).sum()

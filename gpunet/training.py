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
    return _steps(model, loss, optimizer, x, y, batch_size, shuffle, metrics, graph, comm)


def _steps(model: Layer, loss: Loss, optimizer: Optimizer, x: Array, y: Array,
           batch_size: int, shuffle: bool, metrics: EpochMetrics | None, graph: str,
           comm: Communicator) -> Iterator[Step]:
    """``steps`` once its arguments are checked."""
    backend = model_backend(model, x)
    shared = comm.size > 1
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
    x, y = check_data(model, inputs, targets)
    metrics = EpochMetrics(model_backend(model, x), len(x), batch_size)
    for _ in steps(model, loss, optimizer, x, y, batch_size, shuffle=shuffle,
                   metrics=metrics, graph=graph):
        pass
    return metrics.losses.sum()


def accuracy(model: Layer, inputs: Any, targets: Any) -> float:
    """The fraction of rows whose largest output is at the target's largest entry."""
    x, y = check_data(model, inputs, targets)
    return float(correct(model.forward(x), y)) / len(y)


def check_data(model: Layer, inputs: Any, targets: Any, what: str = "") -> tuple[Array, Array]:
    """``inputs`` and ``targets`` as arrays on ``model``'s backend; ValueError,
    one line naming the argument (``what`` before it, e.g. "test "), unless they
    are (N, D) and (N, K) with N >= 1, D the model's input width and K its output
    width (``Layer.widths``, where the model knows them)."""
    backend = model_backend(model, inputs)
    width_in, width_out = model.widths()
    arrays = []
    for name, data, width, role in ((f"{what}inputs", inputs, width_in, "takes"),
                                    (f"{what}targets", targets, width_out, "gives")):
        try:
            array = backend.asarray(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an array of numbers: {exc}") from None
        if array.ndim != 2 or len(array) == 0:
            raise ValueError(f"{name} must be a 2-D array with at least one row (N, columns), "
                             f"got shape {array.shape}")
        if width is not None and array.shape[1] != width:
            columns = array.shape[1]
            raise ValueError(f"{name} have {columns} column{'s' if columns != 1 else ''}, but "
                             f"the model {role} {width} a row")
        arrays.append(array)
    x, y = arrays
    if len(x) != len(y):
        raise ValueError(f"{what}inputs and {what}targets must have the same number of rows, "
                         f"got {len(x)} and {len(y)}")
    return x, y


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

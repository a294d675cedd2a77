"""fit and evaluate: the training loop every command shares.

Each epoch is ``epoch.steps`` with its number (so its random draws follow the
module's rule: a resumed run repeats an uninterrupted one), dropout switched
on and the data shuffled on the device; each step records its samples' losses
and hits in ``EpochMetrics`` on the device. The progress bar reads them back at
most every ``refresh`` seconds, never per step.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tqdm

from ..backend import Array
from ..distributed.comm import Communicator
from ..distributed.shares import check_shares, share
from ..layers import Layer, set_train
from ..losses import Loss
from ..optimizers import Optimizer
from ..planning.graph import check_mode
from .checks import check_count, check_data, check_finite, model_backend
from .epoch import steps
from .metrics import EpochMetrics, correct


@dataclass
class EpochStats:
    epoch: int                    # 1-based
    loss: float                   # mean per-sample training loss over the epoch
    accuracy: float               # training accuracy over the epoch, as it trained
    test_loss: float | None
    test_accuracy: float | None
    seconds: float                # training time, without the test evaluation
    samples_per_second: float
    step_path: str = "eager"      # how full batches ran: eager, planned, graph (cuBLAS), ...


def evaluate(model: Layer, loss: Loss, inputs: Any, targets: Any,
             batch_size: int = 1000, comm: Communicator | None = None) -> tuple[float, float]:
    """(mean per-sample loss, accuracy) of ``model`` with dropout off, in
    batches; with ``comm`` of several ranks each evaluates its share of the rows
    and the sums are added up (a collective)."""
    batch_size = check_count("batch_size", batch_size, 1)
    x, y = check_data(model, inputs, targets)
    set_train(model, False)
    comm = Communicator() if comm is None else comm
    mine = share(slice(0, len(x)), comm.rank, comm.size)
    total_loss, total_correct = 0, 0
    for start in range(mine.start, mine.stop, batch_size):
        rows = slice(start, min(start + batch_size, mine.stop))
        predicted = model.forward(x[rows])
        total_loss = total_loss + loss.sample_losses_and_gradient(predicted, y[rows])[0].sum()
        total_correct = total_correct + correct(predicted, y[rows])
    with comm.named("the test's sums"):
        sums = comm.sum(np.array([float(total_loss), float(total_correct)]))
    return float(sums[0]) / len(x), float(sums[1]) / len(x)


def fit(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any, *,
        epochs: int, batch_size: int = 1, first_epoch: int = 0, shuffle: bool = True,
        test: tuple[Any, Any] | None = None, progress: bool = True, refresh: float = 0.2,
        on_epoch_end: Callable[[EpochStats], None] | None = None,
        graph: str = "auto", comm: Communicator | None = None) -> list[EpochStats]:
    """Train epochs ``first_epoch + 1 .. epochs``; after each, evaluate on
    ``test`` (inputs, targets) if given and call ``on_epoch_end``. Returns the
    history. The data are checked first (``checks.check_data``, ``test`` too,
    and ``check_finite``: ValueError naming the argument). ``graph`` ("on",
    "off", "auto") says whether planned steps replay as a graph
    (``epoch.steps``). Raises NonFiniteLoss naming the epoch and step where
    the loss stopped being finite. Dropout is left switched off at the end.

    With ``comm`` (``gpunet.distributed``) of several ranks, every rank calls
    ``fit`` with the same arguments and data: rank 0's parameters and optimizer
    state are sent to all first, each epoch's order is drawn from rank 0's
    random key, each step is shared (``epoch.steps``), the statistics and
    the test are reduced over the ranks, and after each epoch the ranks check
    that their parameters are still the same (RanksDiverged otherwise). Only
    rank 0 shows progress; every rank gets the history. A collective that
    waits longer than ``comm.timeout`` raises CollectiveTimeout (then end every
    rank: the communicator cannot be used again)."""
    epochs = check_count("epochs", epochs, 0)
    batch_size = check_count("batch_size", batch_size, 1)
    first_epoch = check_count("first_epoch", first_epoch, 0)
    check_mode(graph)
    inputs, targets = check_data(model, inputs, targets)
    check_finite(inputs, "inputs")
    check_finite(targets, "targets")
    if test is not None:
        pair = isinstance(test, (tuple, list))
        if not pair or len(test) != 2:
            raise ValueError(f"test must be an (inputs, targets) pair, got a "
                             f"{type(test).__name__}{f' of {len(test)}' if pair else ''}")
        test = check_data(model, *test, what="test ")
    comm = Communicator() if comm is None else comm
    if comm.size > 1:
        check_shares(len(inputs), batch_size, comm.size)
        with comm.named("rank 0's parameters' broadcast"):
            comm.broadcast_all([*_parameters(model), *optimizer.state()])
    history = []
    for epoch in range(first_epoch + 1, epochs + 1):
        stats = _train_one_epoch(model, loss, optimizer, inputs, targets, epoch, epochs,
                                 batch_size, shuffle, progress and comm.rank == 0, refresh,
                                 graph, comm)
        if test is not None:
            stats.test_loss, stats.test_accuracy = evaluate(model, loss, *test, comm=comm)
        if comm.size > 1:
            comm.check_same([*_parameters(model), *optimizer.state()],
                            f"after epoch {epoch}, the parameters")
        history.append(stats)
        if on_epoch_end is not None:
            on_epoch_end(stats)
    set_train(model, False)
    return history


def _parameters(model: Layer) -> list[Array]:
    """The model's parameter arrays: its flat buffer when it has one."""
    flat = model.flat()
    return [flat[0]] if flat is not None else list(model.params())


def _train_one_epoch(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Array,
                     targets: Array, epoch: int, epochs: int, batch_size: int, shuffle: bool,
                     progress: bool, refresh: float, graph: str,
                     comm: Communicator) -> EpochStats:
    set_train(model, True)
    n = len(inputs)
    metrics = EpochMetrics(model_backend(model, inputs), n, batch_size, epoch, comm)
    start = last_refresh = time.perf_counter()
    with tqdm.tqdm(total=n, unit="sample", unit_scale=True, desc=f"epoch {epoch}/{epochs}",
                   disable=not progress, leave=True) as bar, \
            comm.named(f"a collective of epoch {epoch}"):
        for step in steps(model, loss, optimizer, inputs, targets, batch_size, epoch=epoch,
                          shuffle=shuffle, metrics=metrics, graph=graph, comm=comm):
            if progress and time.perf_counter() - last_refresh >= refresh:
                if comm.size > 1:  # the statistics are a collective: at the end of the epoch
                    bar.update(step.rows.stop - bar.n)
                else:
                    _show(bar, metrics, step.rows.stop)
                last_refresh = time.perf_counter()
        with comm.named(f"epoch {epoch}'s statistics"):
            mean_loss, accuracy = _show(bar, metrics, n)
        seconds = time.perf_counter() - start
    return EpochStats(epoch, mean_loss, accuracy, None, None, seconds,
                      n / seconds if seconds > 0 else math.inf, metrics.step_path)


def _show(bar: tqdm.tqdm, metrics: EpochMetrics, done: int) -> tuple[float, float]:
    """Read the metrics of the first ``done`` samples, and show them."""
    mean_loss, accuracy = metrics.read(done)
    bar.update(done - bar.n)
    bar.set_postfix_str(f"loss: {mean_loss:.3f} acc: {accuracy:.3f}")
    return mean_loss, accuracy


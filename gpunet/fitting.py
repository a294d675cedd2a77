"""fit and evaluate: the training loop every command shares.

Per epoch: the device generators restart on the epoch's own stream (so a
resumed run repeats an uninterrupted one), dropout is switched on, the data
are shuffled on the device, and each step records its samples' losses and
hits in ``EpochMetrics`` on the device. The progress bar reads them back at
most every ``refresh`` seconds, never per step.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import tqdm

from . import seeding
from .layers import Layer, set_train
from .losses import Loss
from .metrics import EpochMetrics
from .optimizers import Optimizer
from .planning.graph import check_mode
from .training import check_count, correct, model_backend, steps


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
             batch_size: int = 1000) -> tuple[float, float]:
    """(mean per-sample loss, accuracy) of ``model`` with dropout off, in batches."""
    set_train(model, False)
    backend = model_backend(model, inputs)
    x, y = backend.asarray(inputs), backend.asarray(targets)
    total_loss, total_correct = 0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        predicted = model.forward(xb)
        total_loss = total_loss + loss.sample_losses_and_gradient(predicted, yb)[0].sum()
        total_correct = total_correct + correct(predicted, yb)
    return float(total_loss) / max(len(x), 1), float(total_correct) / max(len(x), 1)


def fit(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any, *,
        epochs: int, batch_size: int = 1, first_epoch: int = 0, shuffle: bool = True,
        test: tuple[Any, Any] | None = None, progress: bool = True, refresh: float = 0.2,
        on_epoch_end: Callable[[EpochStats], None] | None = None,
        graph: str = "auto") -> list[EpochStats]:
    """Train epochs ``first_epoch + 1 .. epochs``; after each, evaluate on
    ``test`` (inputs, targets) if given and call ``on_epoch_end``. Returns the
    history. ``graph`` ("on", "off", "auto") says whether planned steps replay
    as a graph (``training.steps``). Raises NonFiniteLoss naming the epoch and
    step where the loss stopped being finite. Dropout is left switched off at the end."""
    check_count("epochs", epochs, 0)
    check_count("batch_size", batch_size, 1)
    check_mode(graph)
    history = []
    for epoch in range(first_epoch + 1, epochs + 1):
        stats = _train_one_epoch(model, loss, optimizer, inputs, targets, epoch, epochs,
                                 batch_size, shuffle, progress, refresh, graph)
        if test is not None:
            stats.test_loss, stats.test_accuracy = evaluate(model, loss, *test)
        history.append(stats)
        if on_epoch_end is not None:
            on_epoch_end(stats)
    set_train(model, False)
    return history


def _train_one_epoch(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any,
                     epoch: int, epochs: int, batch_size: int, shuffle: bool, progress: bool,
                     refresh: float, graph: str) -> EpochStats:
    seeding.start_epoch(epoch)
    set_train(model, True)
    n = len(inputs)
    metrics = EpochMetrics(model_backend(model, inputs), n, batch_size, epoch)
    start = last_refresh = time.perf_counter()
    with tqdm.tqdm(total=n, unit="sample", unit_scale=True, desc=f"epoch {epoch}/{epochs}",
                   disable=not progress, leave=True) as bar:
        for step in steps(model, loss, optimizer, inputs, targets, batch_size, shuffle=shuffle,
                          metrics=metrics, graph=graph):
            if progress and time.perf_counter() - last_refresh >= refresh:
                _show(bar, metrics, step.rows.stop)
                last_refresh = time.perf_counter()
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

"""fit and evaluate: the training loop every command shares.

Per epoch: the device generators restart on the epoch's own stream (so a
resumed run repeats an uninterrupted one), dropout is switched on, the data
are shuffled on the device, and each step's loss and correct count are stored
into small device arrays. The progress bar reads them back at most every
``refresh`` seconds (one sync), never per step.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import tqdm

from . import seeding
from .backend import backend_of
from .layers import Layer, set_train
from .losses import Loss
from .optimizers import Optimizer
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


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__(f"the loss became non-finite in epoch {epoch} at step {step}; "
                         "try a smaller learning rate")
        self.epoch, self.step = epoch, step


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
        batch_loss = loss.loss(predicted, yb)
        total_loss = total_loss + loss.sample_sum(batch_loss, len(xb))
        total_correct = total_correct + correct(predicted, yb)
    return float(total_loss) / max(len(x), 1), float(total_correct) / max(len(x), 1)


def fit(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any, *,
        epochs: int, batch_size: int = 1, first_epoch: int = 0, shuffle: bool = True,
        test: tuple[Any, Any] | None = None, progress: bool = True, refresh: float = 0.2,
        on_epoch_end: Callable[[EpochStats], None] | None = None) -> list[EpochStats]:
    """Train epochs ``first_epoch + 1 .. epochs``; after each, evaluate on
    ``test`` (inputs, targets) if given and call ``on_epoch_end``. Returns the
    history. Raises NonFiniteLoss naming the epoch and step where the loss
    stopped being finite. Dropout is left switched off at the end."""
    check_count("epochs", epochs, 0)
    check_count("batch_size", batch_size, 1)
    history = []
    for epoch in range(first_epoch + 1, epochs + 1):
        stats = _train_one_epoch(model, loss, optimizer, inputs, targets, epoch, epochs,
                                 batch_size, shuffle, progress, refresh)
        if test is not None:
            stats.test_loss, stats.test_accuracy = evaluate(model, loss, *test)
        history.append(stats)
        if on_epoch_end is not None:
            on_epoch_end(stats)
    set_train(model, False)
    return history


def _train_one_epoch(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any,
                     epoch: int, epochs: int, batch_size: int, shuffle: bool, progress: bool,
                     refresh: float) -> EpochStats:
    seeding.start_epoch(epoch)
    set_train(model, True)
    backend = model_backend(model, inputs)
    n = len(inputs)
    n_steps = math.ceil(n / batch_size)
    step_losses = backend.xp.zeros(n_steps, dtype="float64")
    step_correct = backend.xp.zeros(n_steps, dtype="int64")
    start = last_refresh = time.perf_counter()
    with tqdm.tqdm(total=n, unit="sample", unit_scale=True, desc=f"epoch {epoch}/{epochs}",
                   disable=not progress, leave=True) as bar:
        shown = 0
        for step in steps(model, loss, optimizer, inputs, targets, batch_size, shuffle=shuffle):
            step_losses[step.index] = step.loss_sum
            step_correct[step.index] = correct(step.predicted, step.targets)
            if progress and time.perf_counter() - last_refresh >= refresh:
                done = min((step.index + 1) * batch_size, n)
                _show(bar, step_losses[:step.index + 1], step_correct, done, epoch)
                bar.update(done - shown)
                shown, last_refresh = done, time.perf_counter()
        loss_sum, correct_sum = _check(step_losses, epoch), int(step_correct.sum())
        seconds = time.perf_counter() - start
        bar.update(n - shown)
        bar.set_postfix_str(f"loss: {loss_sum / max(n, 1):.3f} acc: {correct_sum / max(n, 1):.3f}")
    return EpochStats(epoch, loss_sum / max(n, 1), correct_sum / max(n, 1), None, None,
                      seconds, n / seconds if seconds > 0 else math.inf)


def _show(bar: tqdm.tqdm, losses: Any, corrects: Any, done: int, epoch: int) -> None:
    """One read-back: the running mean loss and accuracy of the epoch so far."""
    bar.set_postfix_str(f"loss: {_check(losses, epoch) / done:.3f} "
                        f"acc: {int(corrects.sum()) / done:.3f}")


def _check(step_losses: Any, epoch: int) -> float:
    """The sum of the step losses; NonFiniteLoss at the first step that is not finite."""
    total = float(step_losses.sum())
    if not math.isfinite(total):
        xp = backend_of(step_losses).xp
        raise NonFiniteLoss(epoch, int(xp.argmax(~xp.isfinite(step_losses))) + 1)
    return total

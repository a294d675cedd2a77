"""Mini-batch training: the steps of one epoch, forward, loss, backward and update."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .backend import Array, Backend, backend_of
from .layers import Layer
from .losses import Loss
from .optimizers import Optimizer


@dataclass
class Step:
    """What one training step saw: the rows of the epoch's order it took, the
    batch's predictions and targets, and each sample's loss (all left on the
    device)."""
    rows: slice
    predicted: Array
    targets: Array
    losses: Array


def steps(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any,
          batch_size: int = 1, *, shuffle: bool = False) -> Iterator[Step]:
    """Train on ``inputs``/``targets`` (N, D) once, ``batch_size`` rows a step,
    in order (or in a random order drawn on the device with ``shuffle``),
    yielding after each step. With batch size 1 this is the notebook's loop.

    The data move once to the model's backend (that of its first parameter),
    so no step copies between host and device, and nothing is read back.
    """
    check_count("batch_size", batch_size, 1)
    backend = model_backend(model, inputs)
    x, y = backend.asarray(inputs), backend.asarray(targets)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"training needs inputs (N, D) and targets (N, K) with the same N, "
                         f"got shapes {x.shape} and {y.shape}")
    if shuffle:
        order = backend.permutation(len(x))
        x, y = x[order], y[order]
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        predicted = model.forward(xb)
        losses, gradient = loss.sample_losses_and_gradient(predicted, yb)
        model.backward_to_params(gradient)
        optimizer.step(model)
        yield Step(slice(start, start + len(xb)), predicted, yb, losses)


def train_epoch(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any,
                batch_size: int = 1, *, shuffle: bool = False) -> Array:
    """Run ``steps`` for one epoch; returns the sum of the per-sample losses
    (the notebook's ``epoch_loss``) as a 0-d array left on the device."""
    losses = [step.losses for step in steps(model, loss, optimizer, inputs, targets, batch_size,
                                            shuffle=shuffle)]
    xp = model_backend(model, inputs).xp
    return xp.concatenate(losses).sum() if losses else xp.zeros((), dtype="float32")


def accuracy(model: Layer, inputs: Any, targets: Any) -> float:
    """The fraction of rows whose largest output is at the target's largest entry."""
    predicted = model.forward(inputs)
    return float(correct(predicted, backend_of(predicted).asarray(targets))) / len(targets)


def model_backend(model: Layer, data: Any) -> Backend:
    """Where ``model`` computes: its parameters' backend, else that of ``data``."""
    params = model.params()
    return backend_of(params[0] if params else data)


def check_count(name: str, value: Any, minimum: int) -> None:
    """ValueError unless ``value`` is an integer of at least ``minimum`` (0 or 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be a {kind} integer, got {value!r}")


def correct(predicted: Array, targets: Array) -> Array:
    """How many rows of ``predicted`` have their largest entry where ``targets``
    (on the same device) do: a 0-d array on the device."""
    return backend_of(predicted).matches(predicted, targets).sum()

"""Mini-batch training: one epoch of forward, loss, backward and step."""
from __future__ import annotations

from typing import Any

from .backend import Array, backend_of
from .functional import argmax
from .layers import Layer
from .losses import Loss
from .optimizers import Optimizer


def train_epoch(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any,
                batch_size: int = 1, *, shuffle: bool = False) -> Array:
    """Train on ``inputs``/``targets`` (N, D) once, in order (or in a seeded
    random order with ``shuffle``), ``batch_size`` rows a step. With batch
    size 1 this is the notebook's per-sample loop.

    The data move once to the model's backend (that of its first parameter),
    so no step copies between host and device. Returns the sum of the
    per-sample losses (the notebook's ``epoch_loss``) as a 0-d array left on
    the device: nothing is read back during the epoch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    params = model.params()
    backend = backend_of(params[0] if params else inputs)
    x, y = backend.asarray(inputs), backend.asarray(targets)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"train_epoch needs inputs (N, D) and targets (N, K) with the same N, "
                         f"got shapes {x.shape} and {y.shape}")
    if shuffle:
        order = backend.permutation(len(x))
        x, y = x[order], y[order]
    total = backend.xp.zeros((), dtype=x.dtype)
    per_sample = loss.reduction == "mean"
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        predicted = model.forward(xb)
        batch_loss, gradient = loss.loss_and_gradient(predicted, yb)
        total += batch_loss * len(xb) if per_sample else batch_loss
        model.backward_to_params(gradient)
        optimizer.step(model)
    return total


def accuracy(model: Layer, inputs: Any, targets: Any) -> float:
    """The fraction of rows whose largest output is at the target's largest entry."""
    predicted = argmax(model.forward(inputs))
    actual = argmax(targets)
    return float((predicted == actual).mean())

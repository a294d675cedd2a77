"""Optimizers update a layer's parameters in place from its gradients."""
from __future__ import annotations

import math
from typing import Sequence

from .backend import Array, backend_of
from .layers import Layer


class Optimizer:
    def step(self, layer: Layer) -> None:
        raise NotImplementedError

    def state(self) -> list[Array]:
        """The arrays the optimizer carries from step to step (none by default)."""
        return []

    def scratch(self, pairs: Sequence[tuple[Array, Array]]) -> list[Array | None]:
        """A buffer for each parameter's update (``Backend.update_scratch``), made
        on the first step and again whenever the parameters differ in shape."""
        kinds = [(type(p), p.shape, p.dtype) for p, _ in pairs]
        if getattr(self, "_scratch_kinds", None) != kinds:
            self._scratch = [backend_of(p).update_scratch(p) for p, _ in pairs]
            self._scratch_kinds = kinds
        return self._scratch


def update_pairs(layer: Layer) -> list[tuple[Array, Array]]:
    """(param, grad) pairs to update: the layer's two flat buffers when it has
    them, else each parameter with its gradient, shapes checked."""
    flat = layer.flat()
    if flat is not None:
        return [flat]
    params, grads = list(layer.params()), list(layer.grads())
    if len(params) != len(grads):
        raise ValueError(f"{type(layer).__name__} has {len(params)} parameters "
                         f"but {len(grads)} gradients")
    for i, (param, grad) in enumerate(zip(params, grads)):
        if param.shape != grad.shape:
            raise ValueError(f"parameter {i} has shape {param.shape} but its gradient "
                             f"has shape {grad.shape}")
    return list(zip(params, grads))


def _rate(name: str, value: float, upper: float = math.inf) -> float:
    value = float(value)
    if not 0 <= value < upper:
        raise ValueError(f"{name} must be in [0, {upper}), got {value}")
    return value


def valid_learning_rate(value: float) -> float:
    """``value`` as a float if it is a learning rate: finite and >= 0 (else ValueError)."""
    return _rate("learning_rate", value)


def valid_momentum(value: float) -> float:
    """``value`` as a float if it is a momentum: in [0, 1) (else ValueError)."""
    return _rate("momentum", value, upper=1.0)


class GradientDescent(Optimizer):
    """param <- param - lr * grad."""

    def __init__(self, learning_rate: float = 0.1) -> None:
        self.lr = valid_learning_rate(learning_rate)

    def step(self, layer: Layer) -> None:
        pairs = update_pairs(layer)
        for (param, grad), scratch in zip(pairs, self.scratch(pairs)):
            backend_of(param).sgd_update(param, grad, self.lr, scratch)


class Momentum(Optimizer):
    """The notebook's moving-average momentum, per parameter:
    update <- mo * update + (1 - mo) * grad;  param <- param - lr * update.
    The updates start at zero on the first step and are matched to
    ``layer.params()`` by position."""

    def __init__(self, learning_rate: float, momentum: float = 0.9) -> None:
        self.lr = valid_learning_rate(learning_rate)
        self.mo = valid_momentum(momentum)
        self.updates: list[Array] = []

    def step(self, layer: Layer) -> None:
        pairs = update_pairs(layer)
        if not self.updates:
            self.updates = [backend_of(grad).zeros_like(grad) for _, grad in pairs]
        self._check_state(pairs)
        for update, (param, grad), scratch in zip(self.updates, pairs, self.scratch(pairs)):
            backend_of(param).momentum_update(param, update, grad, self.lr, self.mo, scratch)

    def state(self) -> list[Array]:
        """The running updates, once the first step has made them."""
        return list(self.updates)

    def _check_state(self, pairs: Sequence[tuple[Array, Array]]) -> None:
        shapes = [u.shape for u in self.updates]
        if shapes != [p.shape for p, _ in pairs]:
            raise ValueError(f"Momentum was started on parameters of shapes {shapes}, but this "
                             f"layer has {[p.shape for p, _ in pairs]}: use a new optimizer "
                             "for a different model")

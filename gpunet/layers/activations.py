"""Elementwise activations; each saves its output, from which its gradient follows."""
from __future__ import annotations

from typing import Any

from ..backend import Array, backend_of
from .layer import Layer, check_same_shape


class Activation(Layer):
    """y = f(x) elementwise by the backend's ``function``; dx = f'(x) dy from y."""

    function: str  # the backend operation; its gradient is ``function + '_grad'``
    keeps_width = True

    def __init__(self) -> None:
        self.output: Array | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def forward(self, input: Any) -> Array:
        backend = backend_of(input)
        self.output = getattr(backend, self.function)(backend.asarray(input))
        return self.output

    def backward(self, gradient: Any) -> Array:
        y = self._saved(self.output)
        backend = backend_of(y)
        gy = backend.asarray(gradient, y.dtype)
        check_same_shape(gy, y, self)
        return getattr(backend, self.function + "_grad")(y, gy)


class Sigmoid(Activation):
    """y = 1 / (1 + e^-x);  dx = y (1 - y) dy."""
    function = "sigmoid"


class Tanh(Activation):
    """y = tanh x;  dx = (1 - y^2) dy."""
    function = "tanh"


class Relu(Activation):
    """y = max(x, 0);  dx = dy where y > 0, else 0."""
    function = "relu"

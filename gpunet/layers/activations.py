"""Elementwise activations; each saves its output, from which its gradient follows.

Each class names its formulas in the backend's table of activations
(``gpunet/backend/activations.py``); ``ACTIVATION_LAYERS`` lists them all,
and the layer spec and the planning stages take them from there.
"""
from __future__ import annotations

from typing import Any

from ..backend import Array, backend_of
from ..backend.base import FLOAT_DTYPES
from ..backend.activations import ActivationCall, activation_call
from .layer import Layer, check_same_shape


class Activation(Layer):
    """y = f(x) elementwise by the backend's ``activate``; dx = f'(x) dy from y.
    ``scalars`` are its parameters (ValueError for a value it refuses)."""

    function: str  # the activation's name in the backend's ACTIVATIONS, e.g. "tanh"
    keeps_width = True

    def __init__(self, **scalars: float) -> None:
        self.call: ActivationCall = activation_call(self.function, **scalars)
        self.output: Array | None = None

    @property
    def scalars(self) -> dict[str, float]:
        """The activation's parameters by name, e.g. {"alpha": 0.01}."""
        return dict(zip(self.call.formulas.params, self.call.values))

    def __repr__(self) -> str:
        values = ", ".join(f"{key}={value!r}" for key, value in self.scalars.items())
        return f"{type(self).__name__}({values})"

    def forward(self, input: Any) -> Array:
        backend = backend_of(input)
        x = input  # as backend.asarray(input) returns a float array of its own
        if type(x) is not backend.array_type or x.dtype not in FLOAT_DTYPES:
            x = backend.asarray(x)
        self.output = backend.activate(self.call, x)
        return self.output

    def backward(self, gradient: Any) -> Array:
        y = self.output
        if y is None:
            raise self._not_saved()
        backend, gy = backend_of(y), gradient
        if type(gy) is not type(y) or gy.dtype != y.dtype:
            gy = backend.asarray(gy, y.dtype)
        if gy.shape != y.shape:
            check_same_shape(gy, y, self)
        return backend.activate_grad(self.call, y, gy)


class Sigmoid(Activation):
    """y = 1 / (1 + e^-x);  dx = y (1 - y) dy."""
    function = "sigmoid"


class Tanh(Activation):
    """y = tanh x;  dx = (1 - y^2) dy."""
    function = "tanh"


class Relu(Activation):
    """y = max(x, 0);  dx = dy where y > 0, else 0."""
    function = "relu"


class LeakyRelu(Activation):
    """y = x where x >= 0, alpha x below (alpha >= 0);  dx = dy where y > 0, else alpha dy."""
    function = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__(alpha=alpha)


# Every activation layer by class name: exactly these classes (a subclass may compute otherwise).
ACTIVATION_LAYERS: dict[str, type[Activation]] = {
    cls.__name__: cls for cls in (Sigmoid, Tanh, Relu, LeakyRelu)}
__all__ = ["Activation", *ACTIVATION_LAYERS]

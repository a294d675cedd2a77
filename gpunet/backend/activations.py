"""Every activation, declared once: ``ACTIVATIONS``.

An entry gives each place that computes the activation its formula: the CUDA
text of its kernels (``kernels.py`` builds the activation's kernels and its
dense-stage kernels from it), the array formula of the NumPy backend, and the
scalar formula of the notebook peer (``gpunet/bench/peer_notebook.py``); and
the layer's class name and scalar parameters, from which the layer spec,
the planning stages and the backends' methods (``tanh``, ``tanh_grad``, ...)
follow. docs/extending.md tells how to add one.

Every gradient is computed from the saved *output* y and its gradient gy, so
y must determine f'(x): LeakyRelu's alpha >= 0 keeps y > 0 exactly where x > 0.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Array = Any


@dataclass(frozen=True)
class Param:
    """A scalar parameter of an activation: its default and which values it takes."""

    default: float
    valid: Callable[[Any], bool]
    expected: str  # the valid values, in words


@dataclass(frozen=True)
class Formulas:
    """One activation y = f(x) and its gradient dL/dx = f'(x) gy, computed from y.

    ``kernel_forward`` is a CUDA statement setting ``y`` from ``x``, and
    ``kernel_gradient`` a CUDA expression of ``y`` and ``gy``; both generic over
    the type ``T``, each parameter a ``T`` of its own name. ``forward(xp, x,
    out, *values)`` and ``gradient(xp, y, gy, out, *values)`` compute them
    with array module ``xp`` (a gradient's ``out`` is always given, of the
    promoted dtype of y and gy); ``scalar`` and ``scalar_slope(y, *values)``
    (f'(x) from y) on Python floats. ``values`` are the parameters', in order."""

    layer: str  # the layer's class name
    kernel_forward: str
    kernel_gradient: str
    forward: Callable[..., Array]
    gradient: Callable[..., Array]
    scalar: Callable[..., float]
    scalar_slope: Callable[..., float]
    params: dict[str, Param] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivationCall:
    """An activation as a layer applies it: its name in ACTIVATIONS and its
    parameters' values, in the order ``Formulas.params`` lists them."""

    name: str
    values: tuple[float, ...] = ()

    @property
    def formulas(self) -> Formulas:
        return ACTIVATIONS[self.name]


def activation_call(name: str | ActivationCall, **params: Any) -> ActivationCall:
    """The call of activation ``name`` with ``params`` (each missing one its
    default); ValueError naming a parameter it lacks or a value it refuses.
    An ActivationCall is returned as it is."""
    if isinstance(name, ActivationCall):
        return name
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    declared = ACTIVATIONS[name].params
    unknown = params.keys() - declared.keys()
    if unknown:
        raise ValueError(f"{name} has no parameter {', '.join(sorted(unknown))}")
    for key, value in params.items():
        if not declared[key].valid(value):
            raise ValueError(f"{ACTIVATIONS[name].layer}'s {key} must be {declared[key].expected}, "
                             f"got {value!r}")
    return ActivationCall(name, tuple(float(params.get(key, param.default))
                                      for key, param in declared.items()))


def by_layer(layer: str) -> str:
    """The name in ACTIVATIONS of the activation whose layer class is ``layer``."""
    return next(name for name, formulas in ACTIVATIONS.items() if formulas.layer == layer)


def _is_nonnegative(value: Any) -> bool:
    """A finite real number >= 0 (not a bool)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def _into(out: Array | None, y: Array) -> Array:
    """``y``, written into ``out`` when given."""
    if out is None:
        return y
    out[...] = y
    return out


def _sigmoid(xp: Any, x: Array, out: Array | None) -> Array:
    """1 / (1 + e^-x): exact in relative terms for every x; where e^-x
    overflows to inf the result is the correct limit 0."""
    with np.errstate(over="ignore"):
        y = xp.negative(x, out=out)
        xp.exp(y, out=y)
    y += 1
    return xp.divide(1, y, out=y)


def _sigmoid_grad(xp: Any, y: Array, gy: Array, out: Array) -> Array:
    """sigma'(x) = y (1 - y)."""
    gx = xp.subtract(1, y, out=out)
    gx *= gy * y
    return gx


def _tanh_grad(xp: Any, y: Array, gy: Array, out: Array) -> Array:
    """tanh'(x) = 1 - y^2."""
    slope = xp.multiply(y, y, out=out)
    xp.subtract(1, slope, out=slope)
    slope *= gy
    return slope


def _relu_grad(xp: Any, y: Array, gy: Array, out: Array) -> Array:
    """relu'(x) = 1 where y > 0, else 0 (the notebook's choice at x = 0)."""
    gx = xp.greater(y, 0, out=out)
    gx *= gy
    return gx


def _leaky_relu(xp: Any, x: Array, out: Array | None, alpha: float) -> Array:
    """x where x >= 0 (and where x is NaN), alpha x below."""
    return _into(out, xp.where(x < 0, xp.multiply(x, alpha, dtype=x.dtype), x))


def _leaky_relu_grad(xp: Any, y: Array, gy: Array, out: Array, alpha: float) -> Array:
    """gy where y > 0, alpha gy elsewhere (x > 0 exactly where y > 0, as alpha >= 0)."""
    xp.multiply(gy, alpha, out=out, dtype=out.dtype)
    xp.copyto(out, gy, where=y > 0)
    return out


def _scalar_sigmoid(x: float) -> float:
    e = math.exp(-abs(x))
    return (1.0 if x >= 0 else e) / (1.0 + e)


ACTIVATIONS: dict[str, Formulas] = {
    # 1 / (1 + e^-x) from e = e^-|x| <= 1, so nothing overflows for any x:
    # x >= 0 gives 1 / (1 + e), x < 0 gives e / (1 + e); a NaN stays NaN.
    "sigmoid": Formulas(
        "Sigmoid", "const T e = exp(-fabs(x)); y = (x >= T(0) ? T(1) : e) / (T(1) + e)",
        "gy * y * (T(1) - y)", _sigmoid, _sigmoid_grad, _scalar_sigmoid,
        lambda y: y * (1 - y)),
    "tanh": Formulas(
        "Tanh", "y = tanh(x)", "gy * (T(1) - y * y)",
        lambda xp, x, out: xp.tanh(x, out=out), _tanh_grad, math.tanh, lambda y: 1 - y * y),
    # max(x, 0) that keeps a NaN, as NumPy's maximum does; the gradient gy * [y > 0]
    # as NumPy computes it: a NaN or infinite gy still gives NaN where y <= 0.
    "relu": Formulas(
        "Relu", "y = x < T(0) ? T(0) : x", "gy * T(y > T(0))",
        lambda xp, x, out: xp.maximum(x, 0, out=out), _relu_grad,
        lambda x: max(x, 0.0), lambda y: 1.0 if y > 0 else 0.0),
    "leaky_relu": Formulas(
        "LeakyRelu", "y = x < T(0) ? alpha * x : x", "gy * (y > T(0) ? T(1) : alpha)",
        _leaky_relu, _leaky_relu_grad,
        lambda x, alpha: x if x >= 0 else alpha * x,
        lambda y, alpha: 1.0 if y > 0 else alpha,
        {"alpha": Param(0.01, _is_nonnegative, "a finite number >= 0")}),
}


def _methods(name: str) -> dict[str, Callable[..., Array]]:
    """Activation ``name``'s two backend methods, named for it."""
    def forward(self: Any, x: Array, out: Array | None = None, **params: Any) -> Array:
        return self.activate(activation_call(name, **params), x, out)

    def gradient(self: Any, y: Array, gy: Array, out: Array | None = None,
                 **params: Any) -> Array:
        return self.activate_grad(activation_call(name, **params), y, gy, out)

    forward.__name__, gradient.__name__ = name, f"{name}_grad"
    forward.__doc__ = f"{ACTIVATIONS[name].layer}: ``activate`` of {name!r}."
    gradient.__doc__ = f"{ACTIVATIONS[name].layer}: ``activate_grad`` of {name!r}."
    return {name: forward, f"{name}_grad": gradient}


# Mixed into ``Backend``: ``tanh(x, out=None)``, ``tanh_grad(y, gy, out=None)``,
# ``name(x, out=None, **scalars)``, ..., one pair per activation, each
# calling the backend's ``activate`` or ``activate_grad``.
ActivationsByName = type("ActivationsByName", (), {
    method: function for name in ACTIVATIONS for method, function in _methods(name).items()})

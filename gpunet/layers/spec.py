"""Architectures as plain data: describe a network as JSON-able dicts, and build it back.

A layer is ``{"layer": "Linear", "input_dim": 784, "output_dim": 30, "init": "xavier"}``,
``{"layer": "Dropout", "p": 0.1, "inverted": false}``, ``{"layer": "Tanh"}`` (an
activation with scalar parameters has a key for each), ...;
a Sequential is ``{"layer": "Sequential", "layers": [...]}``. Only these known
layer types are built, so a description never runs code.
"""
from __future__ import annotations

import numbers
import reprlib
from typing import Any, Callable

from ..backend import Backend
from ..backend.activations import ACTIVATIONS as FORMULAS
from ..init import INITS
from .activations import ACTIVATION_LAYERS as ACTIVATIONS
from .dropout import Dropout, is_probability
from .layer import Layer
from .linear import Linear
from .sequential import Sequential

MAX_DEPTH = 32  # Sequentials within Sequentials: deeper descriptions are refused


def describe(layer: Layer) -> dict[str, Any]:
    """The architecture of ``layer`` (not its parameter values)."""
    if isinstance(layer, Sequential):
        return {"layer": "Sequential", "layers": [describe(child) for child in layer.layers]}
    if isinstance(layer, Linear):
        return {"layer": "Linear", "input_dim": layer.input_dim, "output_dim": layer.output_dim,
                "init": layer.init}
    if isinstance(layer, Dropout):
        return {"layer": "Dropout", "p": layer.p, "inverted": layer.inverted}
    if ACTIVATIONS.get(type(layer).__name__) is type(layer):
        return {"layer": type(layer).__name__, **layer.scalars}
    raise ValueError(f"cannot describe a {type(layer).__name__}: known layers are "
                     f"Sequential, Linear, Dropout, {', '.join(ACTIVATIONS)}")


def build(spec: Any, *, backend: Backend, dtype: Any = None) -> Layer:
    """A new layer (freshly initialised) from ``describe``'s output; ValueError
    naming the problem for anything else, before anything is allocated."""
    parameter_shapes(spec)
    return _build(spec, backend, dtype)


def parameter_shapes(spec: Any) -> list[tuple[int, ...]]:
    """The shapes of the parameters ``build(spec)`` makes, in order, without
    making them; ValueError naming the problem and where it is for anything
    ``build`` refuses: unknown layers or keys, values of the wrong type or
    range, Sequentials nested more than MAX_DEPTH deep."""
    return _shapes(spec, "", 0)


def _shapes(spec: Any, where: str, depth: int) -> list[tuple[int, ...]]:
    kind, at = _kind(spec, where), f"{where}." if where else ""
    for key in sorted(KEYS[kind]):
        valid, expected = VALUES[key]
        if not valid(spec[key]):
            raise ValueError(f"{at}{key} must be {expected}, got {reprlib.repr(spec[key])}")
    if kind == "Linear":
        return [(spec["output_dim"], spec["input_dim"]), (spec["output_dim"],)]
    if kind != "Sequential":
        return []
    if depth == MAX_DEPTH:
        raise ValueError(f"Sequentials nested more than {MAX_DEPTH} deep")
    return [shape for i, child in enumerate(spec["layers"])
            for shape in _shapes(child, f"{at}layers[{i}]", depth + 1)]


def _kind(spec: Any, where: str) -> str:
    """The layer type of ``spec``, after checking it is known and has exactly its keys."""
    here = f"{where}: " if where else ""
    kind = spec.get("layer") if isinstance(spec, dict) else None
    if not isinstance(kind, str) or kind not in KEYS:
        raise ValueError(f"{here}a layer description must be a dict whose 'layer' is one of "
                         f"{', '.join(KEYS)}, got {reprlib.repr(spec)}")
    if spec.keys() - {"layer"} != KEYS[kind]:
        raise ValueError(f"{here}a {kind} description has the keys {sorted(KEYS[kind])}, "
                         f"got {reprlib.repr(sorted(map(str, spec.keys() - {'layer'})))}")
    return kind


def _is_dimension(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


# Each layer type's keys besides "layer", and what each key's value must be;
# an activation's, its scalars (gpunet/backend/activations.py).
KEYS = {"Sequential": {"layers"}, "Linear": {"input_dim", "output_dim", "init"},
        "Dropout": {"p", "inverted"},
        **{name: set(FORMULAS[cls.function].params) for name, cls in ACTIVATIONS.items()}}
VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "layers": (lambda layers: isinstance(layers, list), "a list"),
    "input_dim": (_is_dimension, "a positive integer"),
    "output_dim": (_is_dimension, "a positive integer"),
    "init": (lambda init: isinstance(init, str) and init in INITS, f"one of {', '.join(INITS)}"),
    "p": (is_probability, "a number in [0, 1)"),
    "inverted": (lambda inverted: isinstance(inverted, bool), "true or false"),
    **{key: (param.valid, param.expected) for formulas in FORMULAS.values()
       for key, param in formulas.params.items()},
}


def _build(spec: dict[str, Any], backend: Backend, dtype: Any) -> Layer:
    """The layer a description that ``parameter_shapes`` accepted describes."""
    kind = spec["layer"]
    if kind == "Sequential":
        return Sequential([_build(child, backend, dtype) for child in spec["layers"]])
    if kind == "Linear":
        return Linear(spec["input_dim"], spec["output_dim"], spec["init"], dtype=dtype,
                      backend=backend)
    if kind == "Dropout":
        return Dropout(spec["p"], spec["inverted"])
    return ACTIVATIONS[kind](**{key: spec[key] for key in KEYS[kind]})


def set_train(layer: Layer, train: bool) -> None:
    """Switch every Dropout inside ``layer`` to training (True) or evaluation (False)."""
    if isinstance(layer, Dropout):
        layer.train = train
    for child in getattr(layer, "layers", ()):
        set_train(child, train)

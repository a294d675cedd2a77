"""Architectures as plain data: describe a network as JSON-able dicts, and build it back.

A layer is ``{"layer": "Linear", "input_dim": 784, "output_dim": 30, "init": "xavier"}``,
``{"layer": "Dropout", "p": 0.1, "inverted": false}``, ``{"layer": "Tanh"}``, ...;
a Sequential is ``{"layer": "Sequential", "layers": [...]}``. Only these known
layer types are built, so a description never runs code.
"""
from __future__ import annotations

from typing import Any

from ..backend import Backend
from .activations import Relu, Sigmoid, Tanh
from .dropout import Dropout
from .layer import Layer
from .linear import Linear
from .sequential import Sequential

ACTIVATIONS = {cls.__name__: cls for cls in (Sigmoid, Tanh, Relu)}


def describe(layer: Layer) -> dict[str, Any]:
    """The architecture of ``layer`` (not its parameter values)."""
    if isinstance(layer, Sequential):
        return {"layer": "Sequential", "layers": [describe(child) for child in layer.layers]}
    if isinstance(layer, Linear):
        return {"layer": "Linear", "input_dim": layer.input_dim, "output_dim": layer.output_dim,
                "init": layer.init}
    if isinstance(layer, Dropout):
        return {"layer": "Dropout", "p": layer.p, "inverted": layer.inverted}
    if type(layer).__name__ in ACTIVATIONS:
        return {"layer": type(layer).__name__}
    raise ValueError(f"cannot describe a {type(layer).__name__}: known layers are "
                     f"Sequential, Linear, Dropout, {', '.join(ACTIVATIONS)}")


def build(spec: Any, *, backend: Backend, dtype: Any = None) -> Layer:
    """A new layer (freshly initialised) from ``describe``'s output; ValueError
    naming the problem for anything else."""
    if not isinstance(spec, dict) or not isinstance(spec.get("layer"), str):
        raise ValueError(f"a layer description must be a dict with a 'layer' name, got {spec!r}")
    kind, options = spec["layer"], {k: v for k, v in spec.items() if k != "layer"}
    try:
        if kind == "Sequential":
            return Sequential([build(child, backend=backend, dtype=dtype)
                               for child in options["layers"]])
        if kind == "Linear":
            return Linear(options["input_dim"], options["output_dim"], options["init"],
                          dtype=dtype, backend=backend)
        if kind == "Dropout":
            return Dropout(options["p"], options["inverted"])
        if kind in ACTIVATIONS and not options:
            return ACTIVATIONS[kind]()
    except (KeyError, TypeError) as exc:
        raise ValueError(f"bad {kind} description {spec!r}: {exc!r}") from None
    raise ValueError(f"unknown layer description {spec!r}")


def set_train(layer: Layer, train: bool) -> None:
    """Switch every Dropout inside ``layer`` to training (True) or evaluation (False)."""
    if isinstance(layer, Dropout):
        layer.train = train
    for child in getattr(layer, "layers", ()):
        set_train(child, train)

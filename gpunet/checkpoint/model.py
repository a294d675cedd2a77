"""The model and optimizer state a checkpoint's arrays fill, checked to fit."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..backend import Backend
from ..backend.base import FLOAT_DTYPES
from ..layers import Layer, Linear, build
from ..layers.spec import parameter_shapes
from ..optimizers import update_pairs
from .container import CheckpointError
from .metadata import invalid


def widths(model: Layer) -> tuple[int, int] | None:
    """(inputs, outputs): the width of the rows ``model`` takes and gives, those of its
    first and last Linear layers; None if it has none. ValueError if a Linear layer
    does not take as many inputs as the Linear layer before it gives."""
    linears = list(_linears(model))
    for before, after in zip(linears, linears[1:]):
        if after.input_dim != before.output_dim:
            raise ValueError(f"{after!r} takes {after.input_dim} inputs but {before!r} before "
                             f"it gives {before.output_dim}")
    return (linears[0].input_dim, linears[-1].output_dim) if linears else None


def _linears(layer: Layer) -> Iterator[Linear]:
    if isinstance(layer, Linear):
        yield layer
    for child in getattr(layer, "layers", ()):
        yield from _linears(child)


def model_from(architecture: Any, arrays: list[np.ndarray], backend: Backend, path: Any) -> Layer:
    """The model a valid ``architecture`` describes, holding ``arrays``: built only
    once its parameters are known to have the arrays' shapes."""
    _check_arrays(parameter_shapes(architecture), arrays, path)
    model = build(architecture, backend=backend, dtype=arrays[0].dtype if arrays else None)
    for param, array in zip(model.params(), arrays):
        param[...] = array
    try:
        widths(model)
    except ValueError as exc:
        raise invalid(path, f"architecture: {exc}") from None
    return model


def _check_arrays(shapes: list[tuple[int, ...]], arrays: list[np.ndarray], path: Any) -> None:
    """CheckpointError unless ``arrays`` are float arrays of exactly ``shapes``."""
    if len(arrays) != len(shapes):
        raise CheckpointError(f"{path}: the architecture has {len(shapes)} parameters but the "
                              f"file holds {len(arrays)}")
    for i, (shape, array) in enumerate(zip(shapes, arrays)):
        if array.shape != shape:
            raise CheckpointError(f"{path}: parameter {i} has shape {array.shape} in the file but "
                                  f"the architecture needs {shape}")
        if array.dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{path}: parameter {i} is {array.dtype} in the file; "
                                  "parameters are float32 or float64")


def momentum_state(model: Layer, updates: list[np.ndarray], backend: Backend,
                    path: Any) -> list[Any]:
    """The saved momentum updates on ``backend``, after checking they fit ``model``."""
    params = [param for param, _ in update_pairs(model)]
    if updates and [u.shape for u in updates] != [p.shape for p in params]:
        raise CheckpointError(f"{path}: the momentum state has shapes {[u.shape for u in updates]}"
                              f", the model needs {[p.shape for p in params]}")
    return [backend.asarray(u, p.dtype) for u, p in zip(updates, params)]

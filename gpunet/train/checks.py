"""The checks every training entry point makes of its arguments, one line each."""
from __future__ import annotations

import operator
from typing import Any

from ..backend import Array, Backend, backend_of
from ..layers import Layer


def check_data(model: Layer, inputs: Any, targets: Any, what: str = "") -> tuple[Array, Array]:
    """``inputs`` and ``targets`` as arrays on ``model``'s backend; ValueError,
    one line naming the argument (``what`` before it, e.g. "test "), unless they
    are (N, D) and (N, K) with N >= 1, D the model's input width and K its output
    width (``Layer.widths``, where the model knows them)."""
    backend = model_backend(model, inputs)
    width_in, width_out = model.widths()
    arrays = []
    for name, data, width, role in ((f"{what}inputs", inputs, width_in, "takes"),
                                    (f"{what}targets", targets, width_out, "gives")):
        try:
            array = backend.asarray(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an array of numbers: {exc}") from None
        if array.ndim != 2 or len(array) == 0:
            raise ValueError(f"{name} must be a 2-D array with at least one row (N, columns), "
                             f"got shape {array.shape}")
        if width is not None and array.shape[1] != width:
            columns = array.shape[1]
            raise ValueError(f"{name} have {columns} column{'s' if columns != 1 else ''}, but "
                             f"the model {role} {width} a row")
        arrays.append(array)
    x, y = arrays
    if len(x) != len(y):
        raise ValueError(f"{what}inputs and {what}targets must have the same number of rows, "
                         f"got {len(x)} and {len(y)}")
    return x, y


def check_finite(data: Array, name: str) -> None:
    """ValueError naming the first row of ``data`` (on its device) holding a NaN
    or an infinity: training on it would give a non-finite loss whatever the
    learning rate. One pass over the data and one read-back."""
    xp = backend_of(data).xp
    bad = ~xp.isfinite(data).all(axis=1)
    if bool(bad.any()):
        raise ValueError(f"{name} hold a non-finite value (NaN or infinity) in row "
                         f"{int(xp.argmax(bad))}: training on it gives a non-finite loss")


def check_count(name: str, value: Any, minimum: int) -> int:
    """``value`` as a Python int: any integer ``operator.index`` takes (NumPy's too,
    bools not); ValueError unless it is one of at least ``minimum`` (0 or 1)."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be a {kind} integer, got {value!r}")
    return number


def model_backend(model: Layer, data: Any) -> Backend:
    """Where ``model`` computes: its parameters' backend, else that of ``data``."""
    params = model.params()
    return backend_of(params[0] if params else data)

"""The notebook's helper functions, on arrays and batches.

softmax and log_softmax work along the last axis of any array. The encoders
take one integer (giving one vector, as in the notebook) or a sequence or
array of integers (giving a batch, one row each) and return float32 arrays on
``backend`` (default: ``gpunet.get_backend()``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .backend import Array, Backend, backend_of, get_backend


def softmax(tensor: Any) -> Array:
    """exp(x_i - max x) / sum_j exp(x_j - max x) along the last axis."""
    _, e, total = exp_shifted(tensor)
    e /= total
    return e


def log_softmax(tensor: Any) -> Array:
    """x_i - log sum_j exp(x_j), via the max shift: finite for any finite x."""
    shifted, _, total = exp_shifted(tensor)
    return shifted - backend_of(total).xp.log(total)


def exp_shifted(tensor: Any) -> tuple[Array, Array, Array]:
    """The parts softmax and log-softmax share, along the last axis:
    s = x - max x,  e = exp(s),  and sum e (kept as an axis of length 1)."""
    backend = backend_of(tensor)
    x = backend.asarray(tensor)
    shifted = x - x.max(axis=-1, keepdims=True)
    e = backend.xp.exp(shifted)
    return shifted, e, e.sum(axis=-1, keepdims=True)


def argmax(xs: Any) -> Any:
    """The index of the largest value: an int for one vector, an array of
    indices (one per row, on the device) for a batch."""
    backend = backend_of(xs)
    x = backend.asarray(xs)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"argmax needs a non-empty vector or batch, got shape {x.shape}")
    if x.ndim == 1:
        return int(x.argmax())
    return x.argmax(axis=-1)


def one_hot_encode(i: Any, num_labels: int = 10, *, backend: str | Backend | None = None) -> Array:
    """Row j of the result is 1.0 at column i[j] and 0.0 elsewhere."""
    labels = _integers(i, "one_hot_encode")
    if num_labels < 1:
        raise ValueError(f"one_hot_encode: num_labels must be positive, got {num_labels}")
    _check_range(labels, 0, num_labels, "one_hot_encode", f"labels in 0..{num_labels - 1}")
    return get_backend(backend).asarray(np.eye(num_labels, dtype=np.float32)[labels])


def binary_encode(x: Any, num_bits: int = 10, *, backend: str | Backend | None = None) -> Array:
    """The ``num_bits`` lowest bits of x, least significant first."""
    values = _integers(x, "binary_encode")
    _check_range(values, 0, 2 ** num_bits, "binary_encode",
                 f"0..{2 ** num_bits - 1} in {num_bits} bits")
    bits = (values[..., None] >> np.arange(num_bits)) & 1
    return get_backend(backend).asarray(bits, np.float32)


def fizz_buzz_encode(x: Any, *, backend: str | Backend | None = None) -> Array:
    """One-hot over [number, fizz, buzz, fizzbuzz]."""
    values = _integers(x, "fizz_buzz_encode")
    classes = np.select([values % 15 == 0, values % 5 == 0, values % 3 == 0], [3, 2, 1], 0)
    return one_hot_encode(classes, 4, backend=backend)


def _integers(x: Any, who: str) -> np.ndarray:
    values = np.asarray(backend_of(x).to_numpy(x))
    if values.dtype.kind not in "iub":
        if values.dtype.kind == "f" and np.all(values == np.round(values)):
            return values.astype(np.int64)
        raise ValueError(f"{who} expects integers, got {values.dtype} values")
    return values.astype(np.int64)


def _check_range(values: np.ndarray, low: int, high: int, who: str, what: str) -> None:
    bad = values[(values < low) | (values >= high)]
    if bad.size:
        raise ValueError(f"{who} encodes {what}; got {bad.flat[0]}")

"""Dropout: zero each input with probability p while training."""
from __future__ import annotations

import numbers
from typing import Any

from ..backend import Array, backend_of
from ..backend.base import FLOAT_DTYPES
from ..backend.draw_window import DrawWindow
from .layer import Layer, check_same_shape


class Dropout(Layer):
    """Drops inputs with probability ``p`` when ``train`` is True.

    By default it behaves as the notebook's: kept inputs pass unscaled while
    training, and evaluation multiplies everything by (1 - p) so the expected
    output matches. ``inverted=True`` gives the common alternative: kept inputs
    are scaled by 1/(1 - p) while training and evaluation is the identity.
    Both have the same expectation; they differ only in where the scale sits.
    """

    keeps_width = True

    def __init__(self, p: float, inverted: bool = False) -> None:
        if not is_probability(p):
            raise ValueError(f"Dropout probability p must be a number in [0, 1), got {p!r}")
        self.p = float(p)
        self.inverted = inverted
        self.train = True
        self.mask: Array | None = None

    def __repr__(self) -> str:
        return f"Dropout({self.p}, inverted={self.inverted})"

    @property
    def training_scale(self) -> float:
        """What a kept input is multiplied by while training."""
        return 1 / (1 - self.p) if self.inverted else 1

    def forward(self, input: Any, window: DrawWindow | None = None) -> Array:
        """While training, the mask of x takes the backend's next x.size uniform
        draws (``Backend.dropout``), or, with ``window`` (these rows are a rank's
        share of a batch), these rows' part of the whole batch's draw."""
        backend = backend_of(input)
        x = input  # as backend.asarray(input) returns a float array of its own
        if type(x) is not backend.array_type or x.dtype not in FLOAT_DTYPES:
            x = backend.asarray(x)
        if self.train:
            output, self.mask = backend.dropout(x, self.p, self.training_scale, window)
            return output
        self.mask = None
        return x if self.inverted else x * (1 - self.p)

    def backward(self, gradient: Any) -> Array:
        if not self.train:
            raise RuntimeError("Dropout.backward called in evaluation mode (train=False): "
                               "set train = True before the forward pass you differentiate")
        mask = self.mask
        if mask is None:
            raise self._not_saved()
        gy = gradient
        if type(gy) is not type(mask) or gy.dtype != mask.dtype:
            gy = backend_of(mask).asarray(gy, mask.dtype)
        if gy.shape != mask.shape:
            check_same_shape(gy, mask, self)
        return gy * mask


def is_probability(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool, not a string) in [0, 1)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value < 1

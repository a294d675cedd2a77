"""The NumPy backend's eager operations in C where that pays.

Dropout with its draws, the softmax cross-entropy of one-hot targets and the
momentum update, on float32 C-contiguous arrays, run ``host_operations.c``
(``host_c.library()``): one pass each where NumPy makes several, the same
float32 operations in the same order, so the same numbers bit for bit; NumPy's
exp and log stay NumPy's. Anything else, and every operation where there is no
C compiler or the C is turned off (``use_host_c``), is ``Backend``'s.

The library and arrays' addresses are read inline (``host_c.library()``, a
cached call, and ``addressof(buffer(x))``: C calls only, not ``host_library``
or ``host_c.at``): a Python call per array would cost about what the C saves on
a batch of one.
"""
from __future__ import annotations

import ctypes
from ctypes import addressof
from typing import Any

import numpy as np

from . import host_c
from .draw_window import DrawWindow

Array = Any
F32 = np.dtype(np.float32)
buffer = ctypes.c_char.from_buffer  # a writable array's first byte


class HostOperations:
    """Mixed into the NumPy backend before ``Backend``, whose operations these
    fall back to."""

    host_c_on = True  # whether the C runs where it applies (``use_host_c``)
    key: int
    drawn: int
    take_draws: Any

    def use_host_c(self, on: bool) -> None:
        """Run the C where it applies (the default), or NumPy only: the same
        numbers either way but the large products', which with it on are
        host_gemm.c's where the CPU has AVX-512F (their own order of sums); the
        host replay (``--graph``) needs it on."""
        self.host_c_on = bool(on)

    def host_library(self) -> ctypes.CDLL | str:
        """The C this backend runs, or why it runs none."""
        return host_c.library() if self.host_c_on else "host C turned off (use_host_c)"

    def dropout(self, x: Array, p: float, scale: float,
                window: DrawWindow | None = None) -> tuple[Array, Array]:
        lib = host_c.library() if self.host_c_on else None
        if (type(lib) is not ctypes.CDLL or x.dtype != F32 or not x.size
                or not x.flags.c_contiguous):
            return super().dropout(x, p, scale, window)  # type: ignore[misc]
        if window is None:  # take_draws(x.shape), inline
            first = self.drawn
            self.drawn = first + x.size
        else:
            first = self.take_draws(x.shape, window)
        y, mask = np.empty_like(x), np.empty_like(x)
        lib.dropout(addressof(buffer(x)) if x.flags.writeable else x.ctypes.data,
                    addressof(buffer(y)), addressof(buffer(mask)), x.size, self.key, first,
                    p, scale)
        return y, mask

    def softmax_cross_entropy(self, z: Array, a: Array, scale: float) -> tuple[Array, Array]:
        lib = host_c.library() if self.host_c_on else None
        if (type(lib) is ctypes.CDLL and z.ndim == 2 and z.shape == a.shape and z.size
                and z.dtype == F32 and a.dtype == F32 and type(scale) in (float, int)
                and z.flags.c_contiguous and a.flags.c_contiguous):
            n, k = z.shape
            shifted, classes = np.empty_like(z), np.empty(n, np.int64)
            z_at = addressof(buffer(z)) if z.flags.writeable else z.ctypes.data
            a_at = addressof(buffer(a)) if a.flags.writeable else a.ctypes.data
            shifted_at, classes_at = addressof(buffer(shifted)), addressof(buffer(classes))
            if lib.shifted_one_hot(z_at, a_at, shifted_at, classes_at, n, k):
                e = np.exp(shifted)
                total = np.add.reduce(e, -1)
                log_total, losses = np.log(total), np.empty(n, F32)
                lib.one_hot_losses(shifted_at, addressof(buffer(e)), addressof(buffer(total)),
                                   addressof(buffer(log_total)), a_at, classes_at,
                                   addressof(buffer(losses)), n, k, scale)
                return losses, e
        with np.errstate(over="ignore"):  # z - max z = -inf for logits 6e38 apart: e = 0, right
            return super().softmax_cross_entropy(z, a, scale)  # type: ignore[misc]

    def momentum_update(self, param: Array, velocity: Array, grad: Array, lr: float,
                        momentum: float, scratch: Array | None = None) -> None:
        lib = host_c.library() if self.host_c_on else None
        if (type(lib) is ctypes.CDLL and type(lr) is float and type(momentum) is float
                and param.size and param.shape == velocity.shape == grad.shape
                and param.dtype == velocity.dtype == grad.dtype == F32
                and param.flags.c_contiguous and velocity.flags.c_contiguous
                and grad.flags.c_contiguous
                and param.flags.writeable and velocity.flags.writeable):  # else NumPy's error
            p_at, v_at = addressof(buffer(param)), addressof(buffer(velocity))
            g_at = addressof(buffer(grad)) if grad.flags.writeable else grad.ctypes.data
            size = param.nbytes  # overlapping arrays: NumPy's order of their passes
            if abs(p_at - v_at) >= size and abs(p_at - g_at) >= size and abs(v_at - g_at) >= size:
                lib.momentum_update(p_at, v_at, g_at, param.size, lr, momentum, 1 - momentum)
                return
        super().momentum_update(param, velocity, grad, lr, momentum, scratch)  # type: ignore[misc]

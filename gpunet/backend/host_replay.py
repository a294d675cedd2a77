"""A graph step on the host: the recorded step replayed as calls bound once.

What a CUDA graph is to a GPU, and tinygrad's TinyJit to its kernels: the step's
backend operations are recorded as it runs once (``record_calls``), then each
becomes calls with every argument bound, the stages of ``host_step.c`` at their
arrays' addresses and NumPy's activations (their forward formulas), exp, log,
row sums and products with their ``out=``, so a replay makes no Python decision,
looks nothing up and allocates nothing. The C does the NumPy backend's float32
operations in its order, so a replay gives the planned step's numbers bit for
bit. What it does not cover (float64, a stage with neither activation nor
dropout, targets that are not one-hot, plain descent, arrays that are not
C-contiguous) is replayed as the recorded operation itself.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Any, Callable

import numpy as np

from .activations import ACTIVATIONS, activation_call
from .graph_step import GraphCaptureError, Replay, StateRows, record_calls
from .host_c import ACTIVATION_CODES, at, c_arrays
from .host_gemm import GEMM_WORK

Array = Any
Call = Callable[[], Any]


def capture(backend: Any, record: Replay, lib: ctypes.CDLL | str) -> BoundReplay:
    """Run ``record()``, a step of ``backend``'s operations (the NumPy
    backend's), once and return what replays it as bound calls to ``lib``
    (``host_c.library()``) and NumPy; GraphCaptureError, before anything runs,
    where ``lib`` is the reason there is none."""
    if isinstance(lib, str):
        raise GraphCaptureError(f"host: {lib}")
    bound = BoundCalls(backend, lib)
    return BoundReplay([call for operation, args, kwargs in record_calls(backend, record)
                        for call in bound.of(operation, args, kwargs)])


class BoundReplay:
    """A captured step: ``calls``, each with every argument bound, run in order."""

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls

    def __call__(self) -> None:
        for call in self.calls:
            call()


class BoundCalls:
    """A graph step's operations on ``backend`` as calls with their arguments
    bound: each method, named as its operation, gives its calls, or None where
    the C does not cover it."""

    def __init__(self, backend: Any, lib: ctypes.CDLL) -> None:
        self.backend, self.lib = backend, lib

    def of(self, operation: Callable[..., Any], args: tuple, kwargs: dict) -> list[Call]:
        """A recorded operation's calls, or the operation itself with its arguments."""
        bind = getattr(self, operation.__name__, None)
        calls = bind(*args, **kwargs) if bind is not None else None
        return calls or [functools.partial(operation, *args, **kwargs)]

    def gemm(self, a, b, out=None, *, trans_a=False, trans_b=False,
             aside=False) -> list[Call] | None:
        """The product as ``gemm`` makes it: gemm's choice of function
        (``products.py``) made once, here, so a replay calls NumPy directly where
        ``NumpyBackend.matmul`` would (a product too small for host_gemm.py), else
        that; a batch's rows, which move each step, found from the state when it runs."""
        if out is None:
            return None
        state_rows = self.backend.state_rows
        x, y = (state_rows(m) if type(m) is StateRows else m for m in (a, b))
        x, y = x.T if trans_a else x, y.T if trans_b else y
        if x.shape[1] == 1:
            product = np.multiply
        elif x.shape[0] * x.shape[1] * y.shape[1] <= GEMM_WORK:
            product = np.matmul
        else:
            product = self.backend.matmul
        if type(a) is not StateRows and type(b) is not StateRows:
            return [functools.partial(product, x, y, out=out)]

        def with_rows() -> None:
            x, y = (state_rows(m) if type(m) is StateRows else m for m in (a, b))
            product(x.T if trans_a else x, y.T if trans_b else y, out=out)
        return [with_rows]

    def dense_forward(self, z, bias, y, *, activation=None, dropout=None, mask=None,
                      state=None, window=None) -> list[Call] | None:
        if ((dropout is not None and state is None) or y is not z
                or not c_arrays(np.float32, z, bias, mask if dropout else None)):
            return None  # draws from the backend's own counters: recorded
        (values, skip), (p, scale) = state or (None, 0), dropout or (0.0, 1.0)
        stage = functools.partial(self.lib.dense_forward, at(z), at(bias),
                                  None if dropout is None else at(mask), *z.shape,
                                  None if dropout is None else at(values), skip, p, scale)
        if activation is None:
            return [stage]
        activation = activation_call(activation)
        forward = ACTIVATIONS[activation.name].forward  # Backend.activate's, bound
        return [stage, functools.partial(forward, np, z, z, *activation.values)]

    def _product_then(self, product: tuple, options: dict, operation: Callable[..., Any],
                      args: tuple, kwargs: dict) -> list[Call]:
        """A fused operation's calls: its product's (``gemm(*product, **options)``),
        then ``operation``'s (each as bound, or recorded)."""
        return (self.of(self.backend.gemm, product, options)
                + self.of(operation, args, kwargs))

    def gemm_dense_forward(self, h, w, z, bias, **forward) -> list[Call]:
        return self._product_then((h, w), {"out": z, "trans_b": True},
                                  self.backend.dense_forward, (z, bias, z), forward)

    def gemm_dense_backward(self, g, w, gy, y, dz, db, **backward) -> list[Call]:
        return self._product_then((g, w), {"out": gy}, self.backend.dense_backward,
                                  (y, gy, dz, db), backward)

    def dense_backward(self, y, gy, dz, db, *, activation=None, mask=None) -> list[Call] | None:
        activation = None if activation is None else activation_call(activation)
        if (activation is None or activation.name not in ACTIVATION_CODES
                or not c_arrays(np.float32, y, gy, dz, db, mask)):
            return None
        alpha = dict(zip(activation.formulas.params, activation.values)).get("alpha", 0.0)
        return [functools.partial(self.lib.dense_backward, at(y), at(gy), at(dz),
                                  None if mask is None else at(mask), at(db), *gy.shape,
                                  ACTIVATION_CODES[activation.name], alpha)]

    def gemm_dense_softmax_cross_entropy(self, h, w, z, *output, **named) -> list[Call]:
        return self._product_then((h, w), {"out": z, "trans_b": True},
                                  self.backend.dense_softmax_cross_entropy, (z, *output), named)

    def dense_softmax_cross_entropy(self, z, bias, a, scale, gradient, losses, hits, db,
                                    state=None, classes=None) -> list[Call] | None:
        f32 = np.float32
        if (state is None or classes is None or not c_arrays(f32, z, bias, a, gradient, db)
                or not (c_arrays(np.float64, losses) and c_arrays(np.bool_, hits)
                        and c_arrays(np.int64, classes.classes))):
            return None
        n, k = z.shape
        total, log_total = np.empty(n, f32), np.empty(n, f32)
        # the exp is of z - max z <= 0, shifted in C: no overflow to silence
        return [functools.partial(self.lib.logits_shifted, at(z), at(bias), at(state),
                                  at(classes.classes), at(hits), n, k),
                functools.partial(np.exp, z, out=gradient),
                functools.partial(np.add.reduce, gradient, axis=-1, out=total),
                functools.partial(np.log, total, out=log_total),
                functools.partial(self.lib.losses_and_gradient, at(z), at(gradient), at(total),
                                  at(log_total), at(a), at(state), at(classes.classes),
                                  at(losses), at(db), n, k, scale)]

    def update_and_advance(self, param, grad, velocity, rates, scratch, state,
                           delta) -> list[Call] | None:
        if (velocity is None or not c_arrays(np.float32, param, grad, velocity, rates)
                or not c_arrays(np.uint64, state, delta)):
            return None
        return [functools.partial(self.lib.momentum_update_and_advance, at(param),
                                  at(velocity), at(grad), param.size, at(rates), at(state),
                                  at(delta))]

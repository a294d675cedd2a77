"""Per-operation cases: each backend operation against the plain array expression it replaces.

Each case builds its inputs once, then offers two zero-argument callables:
``kernel`` (the backend's operation, a custom kernel on a GPU) and
``expression`` (the obvious array expression), plus the bytes one call must
move at least (every input read once, every output written once), from which
achieved GB/s follows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..backend import Backend

OPS = ("sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad",
       "softmax_cross_entropy", "matches", "sgd_update", "momentum_update", "dropout")
# Ops whose expression is already one CuPy launch (a ufunc), as their kernel is:
# the two run at the same speed, so no speed target compares them.
ONE_LAUNCH_EXPRESSIONS = frozenset({"tanh", "relu"})
CLASSES = 10  # the row cases work on (size / 10, 10) logits, like MNIST's


@dataclass
class OpCase:
    op: str
    size: int
    kernel: Callable[[], Any]
    expression: Callable[[], Any]
    bytes: int


def op_case(op: str, size: int, backend: Backend, dtype: Any = np.float32) -> OpCase:
    """The case for ``op`` on ``size`` elements of ``dtype`` on ``backend``."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")
    xp, rng = backend.xp, np.random.default_rng(0)

    def array(low: float = -3.0, high: float = 3.0) -> Any:
        return backend.asarray(rng.uniform(low, high, size).astype(dtype))

    item = np.dtype(dtype).itemsize
    x, g = array(), array()
    if op in ("sigmoid", "tanh", "relu"):
        expressions = {"sigmoid": lambda: 1 / (1 + xp.exp(-x)), "tanh": lambda: xp.tanh(x),
                       "relu": lambda: xp.maximum(x, 0)}
        return OpCase(op, size, lambda: getattr(backend, op)(x), expressions[op], 2 * size * item)
    if op.endswith("_grad"):
        y = getattr(backend, op[:-5])(x)
        expressions = {"sigmoid_grad": lambda: g * y * (1 - y), "tanh_grad": lambda: g * (1 - y * y),
                       "relu_grad": lambda: g * (y > 0)}
        return OpCase(op, size, lambda: getattr(backend, op)(y, g), expressions[op], 3 * size * item)
    if op in ("softmax_cross_entropy", "matches"):
        rows = max(size // CLASSES, 1)
        z = x[:rows * CLASSES].reshape(rows, CLASSES)
        labels = backend.asarray(np.eye(CLASSES, dtype=dtype)[rng.integers(0, CLASSES, rows)])
        if op == "matches":
            return OpCase(op, rows * CLASSES, lambda: backend.matches(z, labels),
                          lambda: z.argmax(axis=1) == labels.argmax(axis=1),
                          2 * rows * CLASSES * item + rows)

        def expression() -> Any:
            shifted = z - z.max(axis=1, keepdims=True)
            e = xp.exp(shifted)
            total = e.sum(axis=1, keepdims=True)
            losses = -(labels * (shifted - xp.log(total))).sum(axis=1)
            return losses, (e / total - labels) / rows
        return OpCase(op, rows * CLASSES, lambda: backend.softmax_cross_entropy(z, labels, 1 / rows),
                      expression, 3 * rows * CLASSES * item + rows * item)
    if op == "sgd_update":
        def sgd_expression() -> None:
            x[...] = x - 0.01 * g
        return OpCase(op, size, lambda: backend.sgd_update(x, g, 0.01), sgd_expression,
                      3 * size * item)
    if op == "momentum_update":
        v = backend.zeros_like(x)

        def momentum_expression() -> None:
            v[...] = 0.9 * v + 0.1 * g
            x[...] = x - 0.01 * v
        return OpCase(op, size, lambda: backend.momentum_update(x, v, g, 0.01, 0.9),
                      momentum_expression, 5 * size * item)

    def dropout_expression() -> Any:
        mask = (backend.uniform(x.shape, x.dtype) >= 0.1).astype(x.dtype)
        return x * mask, mask
    return OpCase(op, size, lambda: backend.dropout(x, 0.1, 1), dropout_expression,
                  3 * size * item)

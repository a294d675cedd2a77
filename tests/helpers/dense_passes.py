"""A recorded step's ``dense_passes`` arguments for a small model, on any backend."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from gpunet.backend.graph_step import graph_state

# Models' hidden stages (activation, dropout), their widths and their logits, whose
# stages past the first the row chain takes (block_kernels/rows.py).
CHAINS = {"deep": ((("tanh", True), ("tanh", True)), (30, 10), 10),
          "one hidden stage": ((("relu", False),), (12,), 7),
          "three, one bare": ((("sigmoid", True), (None, False), ("leaky_relu", False)),
                              (9, 5, 32), 4)}


def passes_arguments(stages: tuple, widths: tuple, k: int, dtype: Any, rows: int = 37,
                     asarray: Callable[[np.ndarray], Any] = np.asarray
                     ) -> tuple[tuple, dict[str, Any]]:
    """``dense_passes``' arguments for a model of hidden ``stages`` of ``widths``
    and ``k`` logits over inputs of 20 features, at the rows of a graph step's
    state 5 rows into an epoch of rows + 10 (x, forwards, output, backwards,
    state), each array made by ``asarray``; and every array it writes, by name,
    each filled with NaN (hits with False)."""
    rng = np.random.default_rng(89)
    written: dict[str, Any] = {}

    def out(name: str, shape: Any, kind: Any = dtype) -> Any:
        written[name] = asarray(np.full(shape, False if kind is bool else np.nan, kind))
        return written[name]

    def draw(shape: Any) -> Any:
        return asarray(rng.uniform(-1.0, 1.0, shape).astype(dtype))

    sizes = (20, *widths, k)
    weights = [draw((n, m)) for m, n in zip(sizes, sizes[1:])]
    biases = [draw(n) for n in sizes[1:]]
    skips = np.cumsum([0] + [rows * n if dropout else 0
                             for (_, dropout), n in zip(stages, widths)])
    forwards = [(w, out(f"z{s}", (rows, n)), bias, activation,
                 out(f"mask{s}", (rows, n)) if dropout else None, int(skip),
                 (0.25, 1 / 0.75) if dropout else None)
                for s, ((activation, dropout), w, bias, n, skip) in enumerate(
                    zip(stages, weights, biases, widths, skips), 1)]
    targets = asarray(np.eye(k, dtype=dtype)[np.arange(rows + 10) % k])
    output = (weights[-1], out("logits", (rows, k)), biases[-1], targets, 0.5,
              out("g", (rows, k)), out("losses", rows + 10, np.float64),
              out("hits", rows + 10, bool), out("db_out", k))
    backwards = [(weights[s], written[f"z{s}"] if activation else None, out(f"gy{s}", (rows, n)),
                  out(f"dz{s}", (rows, n)) if activation or dropout else None,
                  out(f"db{s}", n), activation, written.get(f"mask{s}"))
                 for s, ((activation, dropout), n) in reversed(list(enumerate(zip(stages, widths),
                                                                            1)))]
    x = draw((rows, 20))
    return (x, forwards, output, backwards, asarray(graph_state(5, 3, 7))), written

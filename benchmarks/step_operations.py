"""Each backend operation of the planned step, timed inside an epoch and alone.

    python -m benchmarks.step_operations [--batch-size 1] [--repeats 5]

Trains ``bench_core``'s deep model for an epoch with one BLAS thread, timing
each of the step's backend operations (``graph_step.STEP_OPERATIONS``, the
outermost calls only) as it runs among the others; then times each call of one
recorded step again on its own, repeated back to back. Prints microseconds per
step for each operation both ways, the minimum over ``--repeats`` epochs (and
over repeats of 200 calls alone). The ratio is what running among the rest of
a step costs: at batch 1 each operation runs once between about 0.6 million
instructions of others (``step_instructions``), which may leave its code and data
out of the caches; at larger batches each step also reads a new batch from memory
and, now and then, recomputes the dropout draws' block.
"""
from __future__ import annotations

import argparse
import time
import timeit
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from threadpoolctl import threadpool_limits

import gpunet
from gpunet.backend.graph_step import OFFSET, STEP_OPERATIONS, record_calls
from gpunet.planning.graph import step_graph
from gpunet.planning.step import plan_step

from .bench_core import data, deep_model


def timed(backend: gpunet.Backend, spent: dict[str, float]) -> None:
    """Make each of ``backend``'s STEP_OPERATIONS add its seconds to ``spent``
    (a call made inside another, ``gemm_dense_forward``'s ``gemm``, counts as its)."""
    inside = [False]

    def wrap(name: str, operation: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if inside[0]:
                return operation(*args, **kwargs)
            inside[0], start = True, time.perf_counter()
            try:
                return operation(*args, **kwargs)
            finally:
                inside[0] = False
                spent[name] += time.perf_counter() - start
        return call

    for name in STEP_OPERATIONS:
        setattr(backend, name, wrap(name, getattr(backend, name)))


def operation_times(batch: int, repeats: int,
                    samples: int) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per step of each of STEP_OPERATIONS: (inside an epoch of
    ``samples``, the minimum over ``repeats`` epochs; alone, one recorded step's
    calls each repeated 200 times, the minimum over ``repeats``)."""
    x, y = data(samples)
    steps = len(x) // batch
    backend = gpunet.get_backend("numpy")
    loss, in_epoch = gpunet.SoftmaxCrossEntropy(), dict.fromkeys(STEP_OPERATIONS, float("inf"))
    with threadpool_limits(1, user_api="blas"):
        for _ in range(repeats):
            spent: dict[str, float] = defaultdict(float)
            timed(backend, spent)
            try:
                model, optimizer = deep_model(), gpunet.Momentum(0.01, 0.99)
                gpunet.train_epoch(model, loss, optimizer, x, y, batch, graph="off")
            finally:
                for name in STEP_OPERATIONS:
                    delattr(backend, name)
            for name in STEP_OPERATIONS:
                in_epoch[name] = min(in_epoch[name], spent[name] / steps)
        graph = step_graph(plan_step(model, loss, optimizer, backend, batch), ())
        graph.state[OFFSET] = 0  # the epoch's first batch
        alone = dict.fromkeys(STEP_OPERATIONS, 0.0)
        for operation, call_args, kwargs in record_calls(backend, graph.record):
            alone[operation.__name__] += min(timeit.repeat(
                lambda: operation(*call_args, **kwargs), number=200, repeat=repeats)) / 200
    return in_epoch, alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1, help="rows a step (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="epochs timed (default 5)")
    args = parser.parse_args()
    samples = 2_000 if args.batch_size == 1 else 16_384
    in_epoch, alone = operation_times(args.batch_size, args.repeats, samples)
    print(f"batch {args.batch_size}, {samples // args.batch_size} steps an epoch; "
          "microseconds per step")
    print(f"{'operation':<28} {'in an epoch':>12} {'alone':>8} {'ratio':>6}")
    rows = [*((name, in_epoch[name], alone[name]) for name in STEP_OPERATIONS),
            ("all", sum(in_epoch.values()), sum(alone.values()))]
    for name, inside, by_itself in rows:
        print(f"{name:<28} {inside * 1e6:>12.1f} {by_itself * 1e6:>8.1f} "
              f"{inside / by_itself:>6.2f}")


if __name__ == "__main__":
    main()

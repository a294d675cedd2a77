"""Each call of the host replay's step (``train_epoch``'s default on NumPy), timed in
an epoch whose rows come from memory and in one whose rows stay in the cache.

    python -m benchmarks.replay_calls [--batch-size 128] [--repeats 5]
                                      [--samples 16384] [--hot-samples 1280]

Trains ``bench_core``'s deep model with one BLAS thread, then replays epochs with
each of the replay's bound calls (``host_replay.BoundReplay``) timed: over
``--samples`` rows (51 MB at 16,384, read from memory, as ``bench_core`` reads
them) and over ``--hot-samples`` rows (5 MB, read from the cache after the first
epoch), and the whole step's CPU time beside the plain NumPy script's
(``plain_numpy``) on the same rows. Prints microseconds per step, the minimum over
``--repeats`` (wall clock around each call: a timed call's own cost, about 0.1 µs,
included), for the design of the CPU step: what is BLAS, what is the rest.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

import gpunet
from gpunet.planning.graph import step_graph
from gpunet.planning.step import plan_step

from . import plain_numpy
from .bench_core import data, deep_model


def name_of(call: Callable[[], object], index: int) -> str:
    """A replayed call's name: its index, its function's and, for a product, its shapes."""
    function = getattr(call, "func", call)
    name = getattr(function, "__name__", type(function).__name__)
    shapes = [a.shape for a in getattr(call, "args", ())[:2] if isinstance(a, np.ndarray)]
    return f"{index:2} {name}" + "".join(map(str, shapes if len(shapes) == 2 else []))


def epoch_calls(samples: int, batch: int, repeats: int) -> tuple[dict[str, float], float, float]:
    """(microseconds per step of each replayed call, of a whole step, of the
    plain script's step) over ``samples`` rows, minimum over ``repeats`` epochs."""
    x, y = data(samples)
    steps = samples // batch
    model, loss = deep_model(), gpunet.SoftmaxCrossEntropy()
    optimizer, backend = gpunet.Momentum(0.01, 0.99), gpunet.get_backend("numpy")
    gpunet.train_epoch(model, loss, optimizer, x, y, batch)  # captures the replay
    replay = step_graph(plan_step(model, loss, optimizer, backend, batch), ("host",)).replay
    calls, names = list(replay.calls), [name_of(c, i) for i, c in enumerate(replay.calls)]
    best: dict[str, float] = defaultdict(lambda: float("inf"))
    whole = plain = float("inf")
    for _ in range(repeats):
        spent: dict[str, float] = defaultdict(float)

        def timed(name: str, call: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                start = time.perf_counter()
                call()
                spent[name] += time.perf_counter() - start
            return run

        replay.calls = [timed(n, c) for n, c in zip(names, calls)]
        gpunet.train_epoch(model, loss, optimizer, x, y, batch)
        replay.calls = calls
        for name in names:
            best[name] = min(best[name], spent[name] / (steps - 1) * 1e6)  # all but the warm-up
        start = time.process_time()
        gpunet.train_epoch(model, loss, optimizer, x, y, batch)
        whole = min(whole, (time.process_time() - start) / steps * 1e6)
        rng = np.random.default_rng(0)
        params = plain_numpy.init(rng)
        start = time.process_time()
        plain_numpy.epoch(params, [np.zeros_like(p) for p in params], x, y, batch, rng)
        plain = min(plain, (time.process_time() - start) / steps * 1e6)
    return {name: best[name] for name in names}, whole, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=16_384)
    parser.add_argument("--hot-samples", type=int, default=1_280)
    args = parser.parse_args()
    with threadpool_limits(1, user_api="blas"):
        cold = epoch_calls(args.samples, args.batch_size, args.repeats)
        hot = epoch_calls(args.hot_samples, args.batch_size, args.repeats)
    print(f"batch {args.batch_size}; microseconds per step, rows from memory "
          f"({args.samples:,}) and from the cache ({args.hot_samples:,})")
    print(f"{'call':<44} {'memory':>8} {'cache':>8}")
    for name in cold[0]:
        print(f"{name:<44} {cold[0][name]:>8.1f} {hot[0][name]:>8.1f}")
    print(f"{'the calls':<44} {sum(cold[0].values()):>8.1f} {sum(hot[0].values()):>8.1f}")
    print(f"{'a train_epoch step (CPU time)':<44} {cold[1]:>8.1f} {hot[1]:>8.1f}")
    print(f"{'a plain NumPy step (CPU time)':<44} {cold[2]:>8.1f} {hot[2]:>8.1f}")
    print(f"{'plain / train_epoch':<44} {cold[2] / cold[1]:>8.2f} {hot[2] / hot[1]:>8.2f}")


if __name__ == "__main__":
    main()

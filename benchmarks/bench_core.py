"""gpunet's NumPy backend against the plain NumPy script of the same maths.

    python -m benchmarks.bench_core [--batch-sizes 1 128] [--repeats 41]
                                    [--ways train_epoch public public_numpy]

Trains the notebook's deep MNIST model on MNIST-shaped random data (the
speed does not depend on the pixel values) three ways: ``train_epoch`` (its
default: the host replay), ``public``, a user's loop through gpunet's public
API (``model.forward``, ``loss.loss_and_gradient``, ``model.backward_to_params``,
``optimizer.step``), and ``public_numpy``, that loop with the NumPy backend's C
turned off (``use_host_c(False)``: NumPy only); each against ``plain_numpy``'s
epoch, with BLAS pinned to one thread for both. Every repeat times each case's
plain epoch and gpunet epoch back to back (who goes first alternating), cases
interleaved, so a drift in the machine's load hits both. The clock is the
process's CPU time (``time.process_time``), which time spent waiting for a core
shared with other work does not move as it moves the wall clock. It prints
samples/s (medians) and the min/median/max over the repeats of each repeat's
ratio, gpunet's throughput over the plain script's (> 1: gpunet is faster).
Short epochs, many repeats: about a minute on an idle 2-core machine.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

import gpunet
from gpunet.bench.trainers import mnist_like

from . import plain_numpy

def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, labels = mnist_like(n)
    return x, np.eye(10, dtype=np.float32)[labels]


def time_plain(x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    rng = np.random.default_rng(0)
    params = plain_numpy.init(rng)
    updates = [np.zeros_like(p) for p in params]
    start = time.process_time()
    plain_numpy.epoch(params, updates, x, y, batch_size, rng)
    return time.process_time() - start


def deep_model() -> gpunet.Sequential:
    """The notebook's deep model on the NumPy backend, seeded."""
    backend = gpunet.get_backend("numpy")
    gpunet.seed(0)
    return gpunet.Sequential([
        gpunet.Linear(784, 30, backend=backend), gpunet.Dropout(0.1), gpunet.Tanh(),
        gpunet.Linear(30, 10, backend=backend), gpunet.Dropout(0.1), gpunet.Tanh(),
        gpunet.Linear(10, 10, backend=backend),
    ])


def time_gpunet(x: np.ndarray, y: np.ndarray, batch_size: int, graph: str = "auto") -> float:
    """One ``train_epoch`` (its ``graph`` mode as given)."""
    model = deep_model()
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
    start = time.process_time()
    float(gpunet.train_epoch(model, loss, optimizer, x, y, batch_size, graph=graph))
    return time.process_time() - start


def public_epoch(model: gpunet.Sequential, loss: gpunet.SoftmaxCrossEntropy,
                 optimizer: gpunet.Momentum, x: np.ndarray, y: np.ndarray,
                 batch_size: int) -> float:
    """A user's epoch through the public API, the loss summed every step as the
    plain script does (the mean loss times the batch's rows)."""
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        mean, gradient = loss.loss_and_gradient(model.forward(xb), yb)
        model.backward_to_params(gradient)
        optimizer.step(model)
        total += mean * len(xb)
    return float(total)


def time_public(x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """One ``public_epoch``."""
    model = deep_model()
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
    start = time.process_time()
    public_epoch(model, loss, optimizer, x, y, batch_size)
    return time.process_time() - start


def time_public_numpy(x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """One ``public_epoch`` with the NumPy backend's C turned off (``use_host_c``)."""
    backend = gpunet.get_backend("numpy")
    was = backend.host_c_on
    backend.use_host_c(False)
    try:
        return time_public(x, y, batch_size)
    finally:
        backend.use_host_c(was)


TIMERS: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = {
    "train_epoch": time_gpunet, "public": time_public, "public_numpy": time_public_numpy}
WAYS = tuple(TIMERS)


def interleaved(timers: list[Callable[[], float]], repeats: int) -> list[list[float]]:
    """Each timer's seconds in ``repeats`` rounds, after one untimed warm-up round;
    every other round runs them in reverse, so who goes first alternates and a
    drift in the machine's load hits all alike."""
    times: list[list[float]] = [[] for _ in timers]
    for repeat in range(-1, repeats):  # -1: the warm-up
        runs = list(zip(times, timers))
        for kept, run in runs[::-1] if repeat % 2 else runs:
            seconds = run()
            if repeat >= 0:
                kept.append(seconds)
    return times


def compare(cases: list[tuple[str, int, int]], repeats: int) -> dict[tuple[str, int], tuple]:
    """For each case (way, batch size, samples): the plain and gpunet times of
    every repeat, after one untimed warm-up of each, all interleaved."""
    inputs = {n: data(n) for n in {n for _, _, n in cases}}
    timers = [functools.partial(timer, *inputs[n], batch_size) for way, batch_size, n in cases
              for timer in (time_plain, TIMERS[way])]
    times = interleaved(timers, repeats)
    return {(way, batch_size): (times[2 * i], times[2 * i + 1])
            for i, (way, batch_size, _) in enumerate(cases)}


def comparison_options(parser: argparse.ArgumentParser, repeats: int) -> None:
    """The options of a comparison with the plain script: an epoch's samples,
    the batch sizes to compare at, and the repeats (``repeats`` by default)."""
    parser.add_argument("--samples-batch1", type=int, default=1_000,
                        help="samples in an epoch at batch size 1 (default 1000)")
    parser.add_argument("--samples", type=int, default=16_384,
                        help="samples in an epoch at the other batch sizes (default 16384)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 128],
                        help="batch sizes to compare at (default 1 128)")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help=f"epochs timed for each, interleaved (default {repeats})")


def ratios(plain: list[float], ours: list[float]) -> str:
    """min, median and max of the repeats' ratios, plain seconds over ours."""
    each = sorted(p / o for p, o in zip(plain, ours))
    return f"{each[0]:>7.2f}{statistics.median(each):>7.2f}{each[-1]:>7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    comparison_options(parser, repeats=41)
    parser.add_argument("--ways", choices=WAYS, nargs="+", default=list(WAYS),
                        help="how gpunet trains (default: all three)")
    args = parser.parse_args()
    cases = [(way, b, args.samples_batch1 if b == 1 else args.samples)
             for way in args.ways for b in args.batch_sizes]
    with threadpool_limits(1, user_api="blas"):
        times = compare(cases, args.repeats)
    print(f"{'way':<12} {'batch':>5} {'samples':>8} {'plain /s':>10} {'gpunet /s':>10} "
          f"{'ratio min/median/max':>21}")
    for way, batch_size, n in cases:
        plain, ours = times[way, batch_size]
        print(f"{way:<12} {batch_size:>5} {n:>8} {n / statistics.median(plain):>10,.0f} "
              f"{n / statistics.median(ours):>10,.0f} {ratios(plain, ours)}")


if __name__ == "__main__":
    main()

"""gpunet's NumPy backend against the plain NumPy script of the same maths.

    python -m benchmarks.bench_core [--batch-sizes 1 128] [--repeats 7]

Trains the notebook's deep MNIST model on MNIST-shaped random data (the
speed does not depend on the pixel values) and prints samples/s for each
batch size (median of the repeats), with gpunet's throughput as a ratio of
the plain script's.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

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
    start = time.perf_counter()
    plain_numpy.epoch(params, updates, x, y, batch_size, rng)
    return time.perf_counter() - start


def time_gpunet(x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    backend = gpunet.get_backend("numpy")
    gpunet.seed(0)
    model = gpunet.Sequential([
        gpunet.Linear(784, 30, backend=backend), gpunet.Dropout(0.1), gpunet.Tanh(),
        gpunet.Linear(30, 10, backend=backend), gpunet.Dropout(0.1), gpunet.Tanh(),
        gpunet.Linear(10, 10, backend=backend),
    ])
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
    start = time.perf_counter()
    float(gpunet.train_epoch(model, loss, optimizer, x, y, batch_size))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples-batch1", type=int, default=10_000,
                        help="samples in an epoch at batch size 1 (default 10000)")
    parser.add_argument("--samples", type=int, default=60_000,
                        help="samples in an epoch at the other batch sizes (default 60000)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 128],
                        help="batch sizes to compare at (default 1 128)")
    parser.add_argument("--repeats", type=int, default=7,
                        help="epochs timed for each, interleaved (default 7)")
    args = parser.parse_args()
    print(f"{'batch':>6} {'samples':>8} {'plain NumPy /s':>15} {'gpunet /s':>11} {'ratio':>6}")
    for batch_size in args.batch_sizes:
        n = args.samples_batch1 if batch_size == 1 else args.samples
        x, y = data(n)
        plain, ours = [], []
        for repeat in range(args.repeats):  # interleaved, alternating who goes first,
            runs = [(plain, time_plain), (ours, time_gpunet)]  # so drifts hit both alike
            for times, run in runs[::-1] if repeat % 2 else runs:
                times.append(run(x, y, batch_size))
        p, o = n / statistics.median(plain), n / statistics.median(ours)
        print(f"{batch_size:>6} {n:>8} {p:>15,.0f} {o:>11,.0f} {o / p:>6.2f}")


if __name__ == "__main__":
    main()

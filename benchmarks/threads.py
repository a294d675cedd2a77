"""Threads for training: one, every core and auto, idle and beside a busy process.

    python -m benchmarks.threads [--samples 60000] [--repeats 3]

For each model preset at ``gpunet train``'s default batch size it times an
epoch of MNIST-shaped data on the NumPy backend as ``gpunet train`` computes it
(each product's row blocks shared among the threads, one BLAS thread a block:
``gpunet/backend/host_threads.py``) with one thread, every core, and as
``--threads auto`` chooses before the epoch (the cores other processes leave
free); and, as the peer, each product one call of OpenBLAS's own threads on every
core, whose numbers change with the count. Interleaved, first on the machine as
it is, then beside one busy process (``while True: pass``) that it starts and
stops itself. It prints min / median / max seconds per epoch and each case's
ratio to the peer on the idle machine, and the load average before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import gpunet
from gpunet.bench.trainers import mnist_like
from gpunet.models import PRESETS, default_rates, mnist_model
from threadpoolctl import threadpool_limits

from gpunet.threads import AUTO, chosen_threads

BATCH_SIZE = 128  # gpunet train's default


OPENBLAS = "OpenBLAS"  # the peer: each product one call on OpenBLAS's threads


def epoch_seconds(name: str, x: np.ndarray, y: np.ndarray, threads: int | str
                  ) -> tuple[float, int]:
    """An epoch's seconds, and the threads it ran with."""
    backend = gpunet.get_backend("numpy")
    gpunet.seed(0)
    model = mnist_model(name, backend=backend)
    optimizer = gpunet.Momentum(*default_rates(name, BATCH_SIZE))
    if threads == OPENBLAS:
        count = len(os.sched_getaffinity(0))
        threadpool_limits(count, user_api="blas")
        backend.matmul = lambda a, b, out=None: np.matmul(a, b, out=out)  # one call a product
    else:
        count = chosen_threads(threads).count
        backend.use_threads(count)
    try:
        start = time.perf_counter()
        gpunet.fit(model, gpunet.SoftmaxCrossEntropy(), optimizer, x, y, epochs=1,
                   batch_size=BATCH_SIZE, progress=False)
        return time.perf_counter() - start, count
    finally:
        vars(backend).pop("matmul", None)


def busy_process() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000, help="samples an epoch")
    parser.add_argument("--repeats", type=int, default=3, help="readings per case")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    pixels, labels = mnist_like(args.samples)
    x, y = pixels, np.eye(10, dtype=np.float32)[labels]
    print(f"{args.samples} samples an epoch, batch {BATCH_SIZE}, {cores} cores, "
          f"median of {args.repeats} interleaved readings (min..max)")
    print("| model | load | threads | s/epoch | vs OpenBLAS idle | load average before, after |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in PRESETS:
        epoch_seconds(name, x[:BATCH_SIZE * 8], y[:BATCH_SIZE * 8], cores)  # warm-up
        peer_idle = 0.0
        for load in ("idle", "one busy process"):
            busy = busy_process() if load != "idle" else None
            time.sleep(0.5 if busy else 0)
            try:
                before = os.getloadavg()[0]
                readings: dict[int | str, list[float]] = {1: [], cores: [], AUTO: [], OPENBLAS: []}
                chosen: set[int] = set()
                for _ in range(args.repeats):
                    for threads in readings:
                        seconds, count = epoch_seconds(name, x, y, threads)
                        readings[threads].append(seconds)
                        chosen |= {count} if threads == AUTO else set()
                after = os.getloadavg()[0]
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
            peer_idle = peer_idle or statistics.median(readings[OPENBLAS])
            for threads, seconds in readings.items():
                median = statistics.median(seconds)
                ratio = f"{median / peer_idle:.2f}x"
                if threads == AUTO:
                    threads = f"auto: {', '.join(map(str, sorted(chosen)))}"
                if threads == OPENBLAS:
                    threads = f"OpenBLAS {cores}, each product one call"
                print(f"| {name} | {load} | {threads} | {median:.2f} "
                      f"({min(seconds):.2f}..{max(seconds):.2f}) | {ratio} | "
                      f"{before:.1f}, {after:.1f} |", flush=True)


if __name__ == "__main__":
    main()

"""How fast the deep model's step could be on this CPU with its elementwise work compiled.

    python -m benchmarks.compiled_step [--repeats 21] [--batch-sizes 1 128]

Not a gpunet path: a bound for issue 23's CPU targets. The plain script's step
(``plain_numpy``) with each stage's elementwise work one C call
(``compiled_step.c``, built here with ``cc``: bias, dropout mask from gpunet's
SplitMix64 draws and tanh; their gradient and the bias gradient; the softmax
cross-entropy with each row's loss and hit; the momentum update over every
parameter at once) and the matrix products NumPy's, the same calls as the plain
script's and gpunet's. Timed against the plain script as ``bench_core`` times
gpunet: interleaved, the process's CPU time, one BLAS thread; ratio = the
compiled step's samples/s over the plain script's, min/median/max. A second
build with no activation at all gives the floor of any elementwise code: what
is left is the products and the calls from Python. Needs a C compiler (``cc``).
"""
from __future__ import annotations

import argparse
import ctypes
import functools
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import c_library, plain_numpy
from .bench_core import comparison_options, data, interleaved, ratios, time_plain

SOURCE = Path(__file__).with_suffix(".c")
VARIANTS = {"tanh": [], "no activation": ["-DNO_ACTIVATION"]}  # build flags of each
P, N, F, U = ctypes.c_void_p, ctypes.c_long, ctypes.c_float, ctypes.c_uint64
SIGNATURES = {"dense_forward": [P, P, P, N, N, U, U, F], "dense_backward": [P, P, P, P, P, N, N],
              "softmax_cross_entropy": [P, P, P, P, P, P, P, N, N, F],
              "momentum_update": [P, P, P, N, F, F]}


def build(flags: list[str]) -> ctypes.CDLL:
    """``compiled_step.c`` as a shared library, built with ``flags``."""
    return c_library.build(SOURCE, flags, SIGNATURES)


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """a b into ``out``; over one row an outer product, as gpunet's ``gemm``."""
    if a.shape[1] == 1:
        np.multiply(a, b, out=out)
    else:
        np.matmul(a, b, out=out)


class CompiledModel:
    """The plain script's model (its initial weights from ``rng``) in one flat
    buffer, and its step for batches of ``batch`` rows."""

    def __init__(self, lib: ctypes.CDLL, batch: int, rng: np.random.Generator) -> None:
        self.lib, self.batch = lib, batch
        initial = plain_numpy.init(rng)
        size = sum(p.size for p in initial)
        self.flat, self.velocity, self.grad_flat = (np.zeros(size, np.float32) for _ in range(3))
        self.params, self.grads, start = [], [], 0
        for p in initial:
            self.params.append(self.flat[start:start + p.size].reshape(p.shape))
            self.grads.append(self.grad_flat[start:start + p.size].reshape(p.shape))
            self.params[-1][...] = p
            start += p.size
        (_, hidden1), (_, hidden2), (_, out) = plain_numpy.SIZES
        self.z1, self.m1, self.d1 = (np.empty((batch, hidden1), np.float32) for _ in range(3))
        self.z2, self.m2, self.d2 = (np.empty((batch, hidden2), np.float32) for _ in range(3))
        self.z3, self.g3 = (np.empty((batch, out), np.float32) for _ in range(2))
        self.key, self.counter = int(rng.integers(2 ** 63)), 0
        self.at = {name: array.ctypes.data for name, array in vars(self).items()
                   if isinstance(array, np.ndarray)}  # the buffers' addresses, for the C calls
        self.at.update({f"param{i}": p.ctypes.data for i, p in enumerate(self.params)})
        self.at.update({f"grad{i}": g.ctypes.data for i, g in enumerate(self.grads)})

    def step(self, x: np.ndarray, classes_at: int, losses_at: int, hits_at: int) -> None:
        """One step on rows ``x`` (``batch`` of them): their classes (int64) read
        at address ``classes_at``, each row's loss (float32) and hit (uint8)
        written at ``losses_at`` and ``hits_at``, then the update."""
        lib, n, at = self.lib, self.batch, self.at
        w1, _, w2, _, w3, _ = self.params
        gw1, _, gw2, _, gw3, _ = self.grads
        z1, d1, z2, d2, z3, g3 = self.z1, self.d1, self.z2, self.d2, self.z3, self.g3
        np.matmul(x, w1.T, out=z1)
        lib.dense_forward(at["z1"], at["param1"], at["m1"], n, z1.shape[1], self.key,
                          self.counter, plain_numpy.P)
        self.counter += z1.size
        np.matmul(z1, w2.T, out=z2)  # z1 and z2 hold the activations from here
        lib.dense_forward(at["z2"], at["param3"], at["m2"], n, z2.shape[1], self.key,
                          self.counter, plain_numpy.P)
        self.counter += z2.size
        np.matmul(z2, w3.T, out=z3)
        lib.softmax_cross_entropy(at["z3"], at["param5"], classes_at, at["g3"], losses_at,
                                  hits_at, at["grad5"], n, z3.shape[1], 1 / n)
        product(g3.T, z2, gw3)
        np.matmul(g3, w3, out=d2)
        lib.dense_backward(at["z2"], at["d2"], at["m2"], at["d2"], at["grad3"], n, z2.shape[1])
        product(d2.T, z1, gw2)
        np.matmul(d2, w2, out=d1)
        lib.dense_backward(at["z1"], at["d1"], at["m1"], at["d1"], at["grad1"], n, z1.shape[1])
        product(d1.T, x, gw1)
        lib.momentum_update(at["flat"], at["velocity"], at["grad_flat"], self.flat.size,
                            plain_numpy.LR, plain_numpy.MO)


def time_compiled(lib: ctypes.CDLL, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    """CPU seconds of one epoch (whole batches) of a new CompiledModel."""
    model = CompiledModel(lib, batch, np.random.default_rng(0))
    classes = y.argmax(axis=1).astype(np.int64)
    losses, hits = np.empty(len(x), np.float32), np.empty(len(x), np.uint8)
    (classes_at, classes_size), (losses_at, losses_size), (hits_at, hits_size) = (
        (a.ctypes.data, a.itemsize) for a in (classes, losses, hits))
    start = time.process_time()
    for first in range(0, len(x) - batch + 1, batch):
        model.step(x[first:first + batch], classes_at + classes_size * first,
                   losses_at + losses_size * first, hits_at + hits_size * first)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    comparison_options(parser, repeats=21)
    args = parser.parse_args()
    print(f"{'variant':<14} {'batch':>5} {'plain us/step':>14} {'compiled':>9} "
          f"{'ratio min/median/max':>21}")
    with threadpool_limits(1, user_api="blas"):
        libs = {name: build(flags) for name, flags in VARIANTS.items()}
        for batch in args.batch_sizes:
            x, y = data(args.samples_batch1 if batch == 1 else args.samples)
            steps = len(x) // batch
            x, y = x[:steps * batch], y[:steps * batch]
            for name, lib in libs.items():
                plain, compiled = interleaved([functools.partial(time_plain, x, y, batch),
                                               functools.partial(time_compiled, lib, x, y, batch)],
                                              args.repeats)
                plain_us, compiled_us = (statistics.median(t) / steps * 1e6
                                         for t in (plain, compiled))
                print(f"{name:<14} {batch:>5} {plain_us:>14.0f} {compiled_us:>9.0f} "
                      f"{ratios(plain, compiled)}")


if __name__ == "__main__":
    main()

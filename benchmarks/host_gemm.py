"""gpunet's own products (``gpunet/backend/host_gemm.c``) against NumPy's, on the CPU.

    python -m benchmarks.host_gemm [--models deep wide] [--batch-sizes 32 128 1024]
                                   [--epochs 7] [--samples 8192]

First each product of a preset model's step (as ``gpu_products`` names them), with
its operands on 64 bytes: NumPy's call and ``host_gemm.product`` (one BLAS thread,
minimum of 5 repeats of 20), the ratio of NumPy's time over gpunet's, and whether
the kernels took it (``THIN``, ``GEMM_WORK``). Then ``train_epoch`` of each model
with the kernels and without (``host_gemm.kernels`` as None: NumPy's products),
alternating which goes first, the process's CPU time: the ratio of the time
without over the time with, min/median/max over ``--epochs`` pairs. Needs a CPU
with AVX-512F and a C compiler; elsewhere it says so and stops.
"""
from __future__ import annotations

import argparse
import statistics
import time
import timeit
from types import SimpleNamespace

import numpy as np
from threadpoolctl import threadpool_limits

import gpunet
from gpunet.backend import host_gemm
from gpunet.bench.trainers import mnist_like

from .gpu_products import products


def operands(shape_a: tuple[int, int], shape_b: tuple[int, int], trans_a: bool,
             trans_b: bool) -> tuple[np.ndarray, np.ndarray]:
    """a and b as a step stores them, on 64 bytes, then transposed as the product reads them."""
    backend, rng = gpunet.get_backend("numpy"), np.random.default_rng(0)
    a, b = (backend.empty(shape, np.float32) for shape in (shape_a, shape_b))
    a[...], b[...] = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    return (a.T if trans_a else a), (b.T if trans_b else b)


def kernel_called(a: np.ndarray, b: np.ndarray) -> str | None:
    """The kernel ``host_gemm.product(a, b)`` calls, if any (its numbers may equal
    NumPy's, so a stand-in library records the call)."""
    kernels, called = host_gemm.kernels, []
    lib = kernels()
    stand_in = SimpleNamespace(**{name: (lambda *args, name=name: called.append(name)
                                         or getattr(lib, name)(*args))
                                  for name in ("gemm_dots", "gemm_axpys")})
    host_gemm.kernels = lambda: stand_in
    try:
        host_gemm.product(a, b)
    finally:
        host_gemm.kernels = kernels
    return called[0] if called else None


def product_rows(model: str, batch: int) -> list[str]:
    """A line per product of ``model``'s step at ``batch``."""
    lines = []
    for name, (shape_a, shape_b, trans_a, trans_b) in products(model, batch).items():
        a, b = operands(shape_a, shape_b, trans_a, trans_b)
        numpy_us, ours_us = (min(timeit.repeat(lambda f=f: f(a, b), number=20, repeat=5))
                             / 20 * 1e6 for f in (np.matmul, host_gemm.product))
        taken = kernel_called(a, b)
        lines.append(f"{model:5} {batch:5} {name:10} {numpy_us:9.1f} {ours_us:9.1f} "
                     f"{numpy_us / ours_us:6.2f}  {taken or 'NumPy'}")
    return lines


def epoch_seconds(model: str, batch: int, x: np.ndarray, y: np.ndarray, own: bool) -> float:
    """CPU seconds of a second ``train_epoch`` of ``model``, the kernels on or off."""
    kernels = host_gemm.kernels
    try:
        if not own:
            host_gemm.kernels = lambda: None
        gpunet.seed(0)
        net = gpunet.mnist_model(model, backend=gpunet.get_backend("numpy"))
        loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.9)
        gpunet.train_epoch(net, loss, optimizer, x, y, batch)  # plans and captures
        start = time.process_time()
        gpunet.train_epoch(net, loss, optimizer, x, y, batch)
        return time.process_time() - start
    finally:
        host_gemm.kernels = kernels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--models", nargs="+", default=["deep", "wide"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128, 1024])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--samples", type=int, default=8192)
    args = parser.parse_args(argv)
    if host_gemm.kernels() is None:
        print("host_gemm.c does not run here (no C compiler, or no AVX-512F): nothing to time")
        return 0
    x, labels = mnist_like(args.samples)
    y = np.eye(10, dtype=np.float32)[labels]
    with threadpool_limits(1, user_api="blas"):
        print("model batch product    NumPy µs  gpunet µs  ratio  taken by")
        for model in args.models:
            for batch in args.batch_sizes:
                print("\n".join(product_rows(model, batch)))
        print("\ntrain_epoch, time without the kernels over time with (min/median/max)")
        for model in args.models:
            for batch in args.batch_sizes:
                ratios = []
                for i in range(args.epochs):
                    order = (True, False) if i % 2 else (False, True)
                    seconds = dict((own, epoch_seconds(model, batch, x, y, own))
                                   for own in order)
                    ratios.append(seconds[False] / seconds[True])
                print(f"{model:5} {batch:5}  {min(ratios):.2f} "
                      f"{statistics.median(ratios):.2f} {max(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A user's loop through gpunet's layers with their operations' arithmetic in C.

    python -m benchmarks.eager_c [--repeats 21] [--batch-sizes 1 128]

Not a gpunet path: a measurement for issue 23's target for the public path (a
user's forward, loss, backward and step). ``EagerC`` is the NumPy backend with
the eager layers' operations in C (``eager_c.c``, which includes gpunet's
``host_step.c``, built as gpunet builds it): dropout with its draws, tanh's
gradient, softmax cross-entropy and momentum. What is not exact arithmetic
stays NumPy's (tanh, exp, log, a row's sum, the products), so an epoch gives
the NumPy backend's numbers bit for bit. A user's epoch (``bench_core``'s
``public``) on it is checked against the NumPy backend's (exit 1 if it
differs); then the plain script, ``train_epoch`` (its default, the host
replay), and the user's loop on the NumPy backend and on ``EagerC`` are timed,
interleaved, as ``bench_core`` times them (the process's CPU time, one BLAS
thread): each ratio is samples/s over the plain script's, min/median/max.
Needs a C compiler (``cc``).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import sys
from pathlib import Path
from typing import Iterator
from unittest import mock

import numpy as np
from threadpoolctl import threadpool_limits

import gpunet
import gpunet.backend
from gpunet.backend.activations import activation_call
from gpunet.backend.host_replay import STATE_FLAGS, at
from gpunet.backend.numpy_backend import NumpyBackend

from . import c_library
from .bench_core import (comparison_options, data, deep_model, interleaved, public_epoch, ratios,
                         time_gpunet, time_plain, time_public)

SOURCE = Path(__file__).with_suffix(".c")
P, N, F, U = ctypes.c_void_p, ctypes.c_long, ctypes.c_float, ctypes.c_uint64
SIGNATURES = {"dropout": [P, P, P, N, U, U, F, F], "tanh_grad": [P, P, P, N],
              "shifted_one_hot": [P, P, P, P, N, N],
              "one_hot_losses": [P, P, P, P, P, P, P, N, N, F],
              "momentum_update": [P, P, P, N, F, F, F]}
TANH = activation_call("tanh")


def build() -> ctypes.CDLL:
    """``eager_c.c`` as a shared library."""
    lib = c_library.build(SOURCE, STATE_FLAGS, SIGNATURES)
    lib.shifted_one_hot.restype = ctypes.c_bool
    return lib


class EagerC(NumpyBackend):
    """The NumPy backend with the eager layers' operations in C where they are
    the deep model's (float32, C-contiguous, tanh, one-hot targets, momentum),
    anything else as the NumPy backend: dropout with its draws, tanh's
    gradient, softmax cross-entropy around NumPy's exp and log, and the
    momentum update."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        super().__init__()
        self.lib = lib

    def dropout(self, x, p, scale, window=None):
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            return super().dropout(x, p, scale, window)
        y, mask = np.empty_like(x), np.empty_like(x)
        self.lib.dropout(at(x), at(y), at(mask), x.size, self.key,
                         self.take_draws(x.shape, window), p, scale)
        return y, mask

    def activate_grad(self, activation, y, gy, out=None):
        if (activation != TANH or y.dtype != np.float32 or gy.dtype != np.float32
                or not (y.flags.c_contiguous and gy.flags.c_contiguous)):
            return super().activate_grad(activation, y, gy, out)
        out = np.empty_like(y) if out is None else out
        self.lib.tanh_grad(at(y), at(gy), at(out), y.size)
        return out

    def softmax_cross_entropy(self, z, a, scale):
        if (z.dtype != np.float32 or a.dtype != np.float32 or z.ndim != 2 or z.shape != a.shape
                or not (z.flags.c_contiguous and a.flags.c_contiguous)):
            return super().softmax_cross_entropy(z, a, scale)
        n, k = z.shape
        shifted, classes = np.empty_like(z), np.empty(n, np.int64)
        if not self.lib.shifted_one_hot(at(z), at(a), at(shifted), at(classes), n, k):
            return super().softmax_cross_entropy(z, a, scale)
        e = np.exp(shifted)
        total = np.add.reduce(e, -1)
        log_total, losses = np.log(total), np.empty(n, np.float32)
        self.lib.one_hot_losses(at(shifted), at(e), at(total), at(log_total), at(a), at(classes),
                                at(losses), n, k, scale)
        return losses, e

    def momentum_update(self, param, velocity, grad, lr, momentum, scratch=None):
        if param.dtype != np.float32 or not param.flags.c_contiguous:
            return super().momentum_update(param, velocity, grad, lr, momentum, scratch)
        self.lib.momentum_update(at(param), at(velocity), at(grad), param.size, lr, momentum,
                                 1 - momentum)


@contextlib.contextmanager
def owning_numpy_arrays(backend: gpunet.Backend | None) -> Iterator[None]:
    """While open, ``backend`` (if given) is the one gpunet finds for NumPy
    arrays (``backend_of``), so a model of NumPy arrays trains on it."""
    if backend is None:
        yield
        return
    with mock.patch.dict(gpunet.backend._by_array_type, {np.ndarray: backend}):
        yield


def one_epoch(x: np.ndarray, y: np.ndarray, batch: int,
              backend: gpunet.Backend | None = None) -> tuple[float, np.ndarray]:
    """The loss of a user's epoch (``bench_core.public_epoch``) of
    ``deep_model()`` on ``backend`` (default: the NumPy backend), and its
    parameters after."""
    with owning_numpy_arrays(backend):
        model = deep_model()
        loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
        total = public_epoch(model, loss, optimizer, x, y, batch)
    return total, np.concatenate([p.ravel() for p in model.params()])


def same_numbers(backend: EagerC, x: np.ndarray, y: np.ndarray, batch: int) -> bool:
    """Whether ``one_epoch`` on ``backend`` gives the NumPy backend's loss and
    parameters, bit for bit."""
    (loss, params), (want_loss, want_params) = (one_epoch(x, y, batch, backend),
                                                one_epoch(x, y, batch))
    return loss == want_loss and params.tobytes() == want_params.tobytes()


def time_on(backend: EagerC, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    """``bench_core.time_public`` on ``backend``."""
    with owning_numpy_arrays(backend):
        return time_public(x, y, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    comparison_options(parser, repeats=21)
    args = parser.parse_args()
    print(f"{'batch':>5} {'ratio min/median/max:':>21} {'train_epoch':>21} "
          f"{'public numpy':>21} {'public C':>21}")
    with threadpool_limits(1, user_api="blas"):
        eager = EagerC(build())
        for batch in args.batch_sizes:
            x, y = data(args.samples_batch1 if batch == 1 else args.samples)
            if not same_numbers(eager, x, y, batch):
                sys.exit(f"eager_c: batch {batch}: a user's epoch with the C operations differs "
                         "from the NumPy backend's")
            plain, *ours = interleaved(
                [functools.partial(time_plain, x, y, batch),
                 functools.partial(time_gpunet, x, y, batch),
                 functools.partial(time_public, x, y, batch),
                 functools.partial(time_on, eager, x, y, batch)], args.repeats)
            print(f"{batch:>5} {'':>21} " + " ".join(ratios(plain, t) for t in ours))


if __name__ == "__main__":
    main()

"""gpunet's own training with its exact arithmetic in C: a step replayed, or a user's loop.

    python -m benchmarks.host_stages [--repeats 21] [--batch-sizes 1 128]

Not a gpunet path: a measurement for issue 23's CPU targets. ``HostStages`` is
the NumPy backend with the deep model's operations each one C call
(``host_stages.c``, built here with ``cc``): of the planned step, a dense
stage's bias and dropout, its gradient and bias gradient, the output stage
around its exp and log, and the momentum update; of the eager layers, dropout,
tanh's gradient, softmax cross-entropy and momentum. What is not exact
arithmetic stays NumPy's (tanh, exp, log, a row's sum, the products), so an
epoch gives the NumPy backend's numbers bit for bit. ``HostReplay`` is the same
backend whose graph step (``graph="on"``) replays the recorded step as calls
with every argument bound once, as a CUDA graph holds it. Epochs of each way
(planned stages called one by one; replayed; a user's loop, ``bench_core``'s
``public``) are checked against the NumPy backend's first (exit 1 if one
differs); then ``train_epoch`` replayed and the user's loop are timed,
interleaved, with the plain script and the NumPy backend's own as
``bench_core`` times them (the process's CPU time, one BLAS thread): each ratio
is samples/s over the plain script's, min/median/max. Needs a C compiler (``cc``).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator
from unittest import mock

import numpy as np
from threadpoolctl import threadpool_limits

import gpunet
import gpunet.backend
from gpunet.backend.activations import activation_call
from gpunet.backend.graph_step import (COUNTER, KEY, OFFSET, STATE_SIZE, Replay, StateRows,
                                      record_calls)
from gpunet.backend.host_threads import SPLIT_WORK
from gpunet.backend.numpy_backend import NumpyBackend

from . import c_library
from .bench_core import (comparison_options, data, deep_model, interleaved, public_epoch, ratios,
                         time_gpunet, time_plain, time_public)

SOURCE = Path(__file__).with_suffix(".c")
P, N, F, U = ctypes.c_void_p, ctypes.c_long, ctypes.c_float, ctypes.c_uint64
SIGNATURES = {"dense_forward": [P, P, P, N, N, P, U, F, F],
              "dense_backward": [P, P, P, P, P, N, N],
              "logits_shifted": [P, P, P, P, P, N, N],
              "losses_and_gradient": [P, P, P, P, P, P, P, P, P, N, N, F],
              "momentum_update_and_advance": [P, P, P, N, P, P, P],
              "dropout": [P, P, P, N, U, U, F, F], "tanh_grad": [P, P, P, N],
              "shifted_one_hot": [P, P, P, P, N, N],
              "one_hot_losses": [P, P, P, P, P, P, P, N, N, F],
              "momentum_update": [P, P, P, N, F, F, F]}
TANH = activation_call("tanh")  # a stage's activation, as a plan holds it
FLAGS = [f"-D{name}={value}" for name, value in
         (("OFFSET", OFFSET), ("COUNTER", COUNTER), ("KEY", KEY), ("STATE_SIZE", STATE_SIZE))]


def build(folder: Path) -> ctypes.CDLL:
    """``host_stages.c`` as a shared library in ``folder``."""
    lib = c_library.build(SOURCE, folder, FLAGS, SIGNATURES)
    lib.shifted_one_hot.restype = ctypes.c_bool
    return lib


def at(array: np.ndarray) -> int:
    """The address of a writable C-contiguous array's first element (ctypes'
    from_buffer: a third of ``array.ctypes.data``'s time)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(array))


Bound = list[Callable[[], Any]]  # an operation as calls with every argument bound


class HostStages(NumpyBackend):
    """The NumPy backend with the deep model's operations in C where they are
    its (float32, C-contiguous, tanh after each hidden stage, one-hot targets,
    momentum), anything else as the NumPy backend: a graph step's stages but
    the warm-up step's (which has no state), and the eager layers' dropout with
    its draws, tanh's gradient, softmax cross-entropy around NumPy's exp and
    log, and the momentum update. Each ``_bind_<operation>`` of the step gives
    (its calls with their arguments bound, what it returns), or None where the
    NumPy backend's runs."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        super().__init__()
        self.lib = lib

    # -- a graph step's ------------------------------------------------------
    def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(self, f"_bind_{name}")(*args, **kwargs)
        if bound is None:
            return getattr(super(), name)(*args, **kwargs)
        calls, result = bound
        for call in calls:
            call()
        return result

    def dense_forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._run("dense_forward", *args, **kwargs)

    def dense_backward(self, *args: Any, **kwargs: Any) -> Any:
        return self._run("dense_backward", *args, **kwargs)

    def dense_softmax_cross_entropy(self, *args: Any, **kwargs: Any) -> Any:
        return self._run("dense_softmax_cross_entropy", *args, **kwargs)

    def update_and_advance(self, *args: Any, **kwargs: Any) -> Any:
        return self._run("update_and_advance", *args, **kwargs)

    def _bind_dense_forward(self, z, bias, y, *, activation=None, dropout=None, mask=None,
                            state=None, window=None):
        if state is None or z.dtype != np.float32 or y is not z or activation not in (None, TANH):
            return None
        (values, skip), (p, scale) = state, dropout or (0.0, 1.0)
        stage = functools.partial(self.lib.dense_forward, at(z), at(bias),
                                  None if dropout is None else at(mask), *z.shape,
                                  at(values), skip, p, scale)
        return ([stage] if activation is None
                else [stage, functools.partial(np.tanh, z, out=z)]), z

    def _bind_dense_backward(self, y, gy, dz, db, *, activation=None, mask=None):
        if gy.dtype != np.float32 or activation != TANH:
            return None
        return [functools.partial(self.lib.dense_backward, at(y), at(gy), at(dz),
                                  None if mask is None else at(mask), at(db), *gy.shape)], dz

    def _bind_dense_softmax_cross_entropy(self, z, bias, a, scale, gradient, losses, hits, db,
                                          state=None, classes=None):
        if state is None or classes is None or z.dtype != np.float32:
            return None
        n, k = z.shape
        total, log_total = np.empty(n, np.float32), np.empty(n, np.float32)
        # the exp is of z - max z <= 0, shifted in C: no overflow to silence
        return [functools.partial(self.lib.logits_shifted, at(z), at(bias), at(state),
                                  at(classes.classes), at(hits), n, k),
                functools.partial(np.exp, z, out=gradient),
                functools.partial(np.add.reduce, gradient, axis=-1, out=total),
                functools.partial(np.log, total, out=log_total),
                functools.partial(self.lib.losses_and_gradient, at(z), at(gradient), at(total),
                                  at(log_total), at(a), at(state), at(classes.classes),
                                  at(losses), at(db), n, k, scale)], None

    def _bind_update_and_advance(self, param, grad, velocity, rates, scratch, state, delta):
        if velocity is None or param.dtype != np.float32:
            return None
        return [functools.partial(self.lib.momentum_update_and_advance, at(param), at(velocity),
                                  at(grad), param.size, at(rates), at(state), at(delta))], None

    # -- the eager layers' operations (a user's loop through the layers) -----
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


class HostReplay(HostStages):
    """``HostStages`` whose graph step (``train_epoch(graph="on")``) replays the
    recorded step as one list of calls with every argument bound once, the C
    stages' addresses read at capture and the products' operands found: what a
    CUDA graph holds, on the host."""

    def capture(self, record: Replay, gemm: str) -> Replay:
        bound: Bound = [call for operation, args, kwargs in record_calls(self, record)
                        for call in self._calls(operation, args, kwargs)]

        def replay() -> None:
            for call in bound:
                call()
        return replay

    def _calls(self, operation: Callable[..., Any], args: tuple, kwargs: dict) -> Bound:
        """A recorded operation's bound calls, or the operation itself with its arguments."""
        binder = getattr(self, f"_bind_{operation.__name__}", None)
        bound = binder and binder(*args, **kwargs)
        return bound[0] if bound else [functools.partial(operation, *args, **kwargs)]

    def _bind_gemm(self, a, b, out=None, *, trans_a=False, trans_b=False):
        """The product as ``gemm`` makes it, one NumPy call (a batch's rows, which
        move each step, found from the state when it runs)."""
        if type(b) is StateRows or out is None:
            return None
        rows = a if type(a) is StateRows else None
        a, b = (self.state_rows(a) if rows else a), (b.T if trans_b else b)
        a = a.T if trans_a else a
        if a.shape[1] == 1:
            product = np.multiply
        elif a.shape[0] * a.shape[1] * b.shape[1] < SPLIT_WORK:
            product = np.matmul
        else:
            product = self.matmul
        if rows is None:
            return [functools.partial(product, a, b, out=out)], out

        def with_rows() -> None:
            x = self.state_rows(rows)
            product(x.T if trans_a else x, b, out=out)
        return [with_rows], out

    def _bind_gemm_group(self, *products):
        return [call for a, b, out, trans_a, trans_b in products
                for call in self._calls(self.gemm, (a, b, out),
                                        {"trans_a": trans_a, "trans_b": trans_b})], None


@contextlib.contextmanager
def owning_numpy_arrays(backend: gpunet.Backend | None) -> Iterator[None]:
    """While open, ``backend`` (if given) is the one gpunet finds for NumPy
    arrays (``backend_of``), so a model of NumPy arrays trains on it."""
    if backend is None:
        yield
        return
    with mock.patch.dict(gpunet.backend._by_array_type, {np.ndarray: backend}):
        yield


def one_epoch(x: np.ndarray, y: np.ndarray, batch: int, backend: gpunet.Backend | None = None,
              graph: str = "auto", public: bool = False) -> tuple[float, np.ndarray]:
    """The loss of one epoch of ``deep_model()`` on ``backend`` (default: the
    NumPy backend), a ``train_epoch`` in ``graph`` mode or, ``public``, a user's
    loop (``bench_core.public_epoch``), and its parameters after."""
    with owning_numpy_arrays(backend):
        model = deep_model()
        loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
        total = (public_epoch(model, loss, optimizer, x, y, batch) if public else
                 float(gpunet.train_epoch(model, loss, optimizer, x, y, batch, graph=graph)))
    return total, np.concatenate([p.ravel() for p in model.params()])


def same_numbers(backend: HostStages, x: np.ndarray, y: np.ndarray, batch: int,
                 graph: str = "auto", public: bool = False) -> bool:
    """Whether ``one_epoch`` on ``backend`` gives the NumPy backend's loss and
    parameters (``train_epoch`` with graph off, or the same user's loop), bit for bit."""
    (loss, params), (want_loss, want_params) = (one_epoch(x, y, batch, backend, graph, public),
                                                one_epoch(x, y, batch, None, "off", public))
    return loss == want_loss and params.tobytes() == want_params.tobytes()


def time_on(backend: HostStages, timer: Callable[..., float], *args: Any) -> float:
    """``timer(*args)``, a ``bench_core`` timer, on ``backend``."""
    with owning_numpy_arrays(backend):
        return timer(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    comparison_options(parser, repeats=21)
    args = parser.parse_args()
    print(f"{'batch':>5} {'ratio min/median/max:':>21} {'train_epoch numpy':>21} "
          f"{'C replay':>21} {'public numpy':>21} {'C operations':>21}")
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(1, user_api="blas"):
        host = HostReplay(build(Path(folder)))
        for batch in args.batch_sizes:
            x, y = data(args.samples_batch1 if batch == 1 else args.samples)
            if not all(same_numbers(host, x, y, batch, graph, public)
                       for graph, public in (("off", False), ("on", False), ("off", True))):
                sys.exit(f"host_stages: batch {batch}: an epoch with the C operations differs "
                         "from the NumPy backend's")
            plain, *ours = interleaved(
                [functools.partial(time_plain, x, y, batch),
                 functools.partial(time_gpunet, x, y, batch),
                 functools.partial(time_on, host, time_gpunet, x, y, batch, "on"),
                 functools.partial(time_public, x, y, batch),
                 functools.partial(time_on, host, time_public, x, y, batch)], args.repeats)
            print(f"{batch:>5} {'':>21} " + " ".join(ratios(plain, t) for t in ours))


if __name__ == "__main__":
    main()

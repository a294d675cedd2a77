"""gpunet's own planned step with its stages' arithmetic in C: called one by one, or replayed.

    python -m benchmarks.host_stages [--repeats 21] [--batch-sizes 1 128]

Not a gpunet path: a measurement for issue 23's CPU targets. ``HostStages`` is
the NumPy backend with four operations of the deep model's planned step
(``train_epoch``'s) each one C call (``host_stages.c``, built here with ``cc``):
a dense stage's bias and dropout, its gradient and bias gradient, the output
stage around its exp and log, and the momentum update. What is not exact
arithmetic stays NumPy's (tanh, exp, log, a row's sum, the products), so an
epoch gives the NumPy backend's numbers bit for bit. ``HostReplay`` is the same
backend whose graph step (``graph="on"``) replays the recorded step as calls
with every argument bound once, as a CUDA graph holds it. An epoch of each
(stages called one by one, graph off; replayed, graph on) is checked against
the NumPy backend's first (exit 1 if one differs); then the replay is timed,
interleaved, with the plain script and the NumPy backend's ``train_epoch`` as
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
from .bench_core import data, deep_model, interleaved, ratios, size_options, time_gpunet, time_plain

SOURCE = Path(__file__).with_suffix(".c")
P, N, F, U = ctypes.c_void_p, ctypes.c_long, ctypes.c_float, ctypes.c_uint64
SIGNATURES = {"dense_forward": [P, P, P, N, N, P, U, F, F],
              "dense_backward": [P, P, P, P, P, N, N],
              "logits_shifted": [P, P, P, P, P, N, N],
              "losses_and_gradient": [P, P, P, P, P, P, P, P, P, N, N, F],
              "momentum_update_and_advance": [P, P, P, N, P, P, P]}
TANH = activation_call("tanh")  # a stage's activation, as a plan holds it
FLAGS = [f"-D{name}={value}" for name, value in
         (("OFFSET", OFFSET), ("COUNTER", COUNTER), ("KEY", KEY), ("STATE_SIZE", STATE_SIZE))]


def build(folder: Path) -> ctypes.CDLL:
    """``host_stages.c`` as a shared library in ``folder``."""
    return c_library.build(SOURCE, folder, FLAGS, SIGNATURES)


def at(array: np.ndarray) -> int:
    """The address of a writable C-contiguous array's first element (ctypes'
    from_buffer: a third of ``array.ctypes.data``'s time)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(array))


Bound = list[Callable[[], Any]]  # an operation as calls with every argument bound


class HostStages(NumpyBackend):
    """The NumPy backend with a graph step's stages in C where the step is the
    deep model's (float32, tanh after each hidden stage, one-hot targets, momentum);
    anything else, and the warm-up step (no state), as the NumPy backend. Each
    ``_bind_<operation>`` gives (the operation's calls with their arguments
    bound, what it returns), or None where the NumPy backend's runs."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        super().__init__()
        self.lib = lib

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
        p, scale = dropout or (0.0, 1.0)
        stage = functools.partial(self.lib.dense_forward, at(z), at(bias),
                                  None if dropout is None else at(mask), *z.shape,
                                  at(state[0]), state[1], p, scale)
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
              graph: str = "auto") -> tuple[float, np.ndarray]:
    """The loss of one ``train_epoch`` of ``deep_model()`` on ``backend`` (default:
    the NumPy backend) in ``graph`` mode, and its parameters after."""
    with owning_numpy_arrays(backend):
        model = deep_model()
        loss = float(gpunet.train_epoch(model, gpunet.SoftmaxCrossEntropy(),
                                        gpunet.Momentum(0.01, 0.99), x, y, batch, graph=graph))
    return loss, np.concatenate([p.ravel() for p in model.params()])


def same_numbers(backend: HostStages, x: np.ndarray, y: np.ndarray, batch: int,
                 graph: str = "auto") -> bool:
    """Whether an epoch on ``backend`` in ``graph`` mode gives the NumPy
    backend's loss and parameters (graph off), bit for bit."""
    (loss, params), (want_loss, want_params) = (one_epoch(x, y, batch, backend, graph),
                                                one_epoch(x, y, batch))
    return loss == want_loss and params.tobytes() == want_params.tobytes()


def time_on(backend: HostStages, graph: str, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    """``bench_core.time_gpunet`` on ``backend``, in ``graph`` mode."""
    with owning_numpy_arrays(backend):
        return time_gpunet(x, y, batch, graph)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size_options(parser)
    parser.add_argument("--repeats", type=int, default=21,
                        help="epochs timed for each, interleaved (default 21)")
    args = parser.parse_args()
    print(f"{'batch':>5} {'ratio min/median/max:':>21} {'numpy':>21} {'C replay':>21}")
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(1, user_api="blas"):
        host = HostReplay(build(Path(folder)))
        for batch in args.batch_sizes:
            x, y = data(args.samples_batch1 if batch == 1 else args.samples)
            if not all(same_numbers(host, x, y, batch, graph) for graph in ("off", "on")):
                sys.exit(f"host_stages: batch {batch}: an epoch with the C stages differs "
                         "from the NumPy backend's")
            plain, numpy, replay = interleaved(
                [functools.partial(time_plain, x, y, batch),
                 functools.partial(time_gpunet, x, y, batch),
                 functools.partial(time_on, host, "on", x, y, batch)], args.repeats)
            print(f"{batch:>5} {'':>21} {ratios(plain, numpy)} {ratios(plain, replay)}")


if __name__ == "__main__":
    main()

"""gpunet's own planned step with its stages' arithmetic in C: what that alone gains.

    python -m benchmarks.host_stages [--repeats 21] [--batch-sizes 1 128]

Not a gpunet path: a measurement for issue 23's CPU targets. ``HostStages`` is
the NumPy backend with four operations of the deep model's planned step
(``train_epoch``'s) each one C call (``host_stages.c``, built here with ``cc``):
a dense stage's bias and dropout, its gradient and bias gradient, the output
stage around its exp and log, and the momentum update. What is not exact
arithmetic stays NumPy's (tanh, exp, log, a row's sum, the products), so the
epoch gives the NumPy backend's numbers bit for bit, which this checks first
(exit 1 if not). Timed, interleaved, with the plain script and the NumPy
backend's ``train_epoch`` as ``bench_core`` times them (the process's CPU time,
one BLAS thread): each ratio is samples/s over the plain script's,
min/median/max. Needs a C compiler (``cc``).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import sys
import tempfile
from pathlib import Path
from typing import Iterator
from unittest import mock

import numpy as np
from threadpoolctl import threadpool_limits

import gpunet
import gpunet.backend
from gpunet.backend.activations import activation_call
from gpunet.backend.graph_step import COUNTER, KEY, OFFSET, STATE_SIZE
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


class HostStages(NumpyBackend):
    """The NumPy backend with a graph step's stages in C where the step is the
    deep model's (float32, tanh after each hidden stage, one-hot targets, momentum);
    anything else, and the warm-up step (no state), as the NumPy backend."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        super().__init__()
        self.lib = lib

    def dense_forward(self, z, bias, y, *, activation=None, dropout=None, mask=None, state=None,
                      window=None):
        if state is None or z.dtype != np.float32 or y is not z or activation not in (None, TANH):
            return super().dense_forward(z, bias, y, activation=activation, dropout=dropout,
                                         mask=mask, state=state, window=window)
        values, skip = state
        p, scale = dropout or (0.0, 1.0)
        self.lib.dense_forward(at(z), at(bias), None if dropout is None else at(mask), *z.shape,
                               at(values), skip, p, scale)
        return z if activation is None else np.tanh(z, out=z)

    def dense_backward(self, y, gy, dz, db, *, activation=None, mask=None):
        if gy.dtype != np.float32 or activation != TANH:
            return super().dense_backward(y, gy, dz, db, activation=activation, mask=mask)
        self.lib.dense_backward(at(y), at(gy), at(dz), None if mask is None else at(mask), at(db),
                                *gy.shape)
        return dz

    def dense_softmax_cross_entropy(self, z, bias, a, scale, gradient, losses, hits, db,
                                    state=None, classes=None):
        if state is None or classes is None or z.dtype != np.float32:
            return super().dense_softmax_cross_entropy(z, bias, a, scale, gradient, losses, hits,
                                                       db, state, classes)
        lib, n, k = self.lib, *z.shape
        lib.logits_shifted(at(z), at(bias), at(state), at(classes.classes), at(hits), n, k)
        with np.errstate(over="ignore"):
            np.exp(z, out=gradient)
        total = np.add.reduce(gradient, axis=-1)
        log_total = np.log(total)
        lib.losses_and_gradient(at(z), at(gradient), at(total), at(log_total), at(a),
                                at(state), at(classes.classes), at(losses), at(db), n, k, scale)

    def update_and_advance(self, param, grad, velocity, rates, scratch, state, delta):
        if velocity is None or param.dtype != np.float32:
            return super().update_and_advance(param, grad, velocity, rates, scratch, state, delta)
        self.lib.momentum_update_and_advance(at(param), at(velocity), at(grad), param.size,
                                             at(rates), at(state), at(delta))


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
    """The loss of one ``train_epoch`` of ``deep_model()`` on ``backend`` (default:
    the NumPy backend), and its parameters after."""
    with owning_numpy_arrays(backend):
        model = deep_model()
        loss = float(gpunet.train_epoch(model, gpunet.SoftmaxCrossEntropy(),
                                        gpunet.Momentum(0.01, 0.99), x, y, batch))
    return loss, np.concatenate([p.ravel() for p in model.params()])


def same_numbers(host: HostStages, x: np.ndarray, y: np.ndarray, batch: int) -> bool:
    """Whether an epoch on ``host`` gives the NumPy backend's loss and parameters, bit for bit."""
    (loss, params), (want_loss, want_params) = (one_epoch(x, y, batch, b) for b in (host, None))
    return loss == want_loss and params.tobytes() == want_params.tobytes()


def time_host(x: np.ndarray, y: np.ndarray, batch: int, host: HostStages) -> float:
    """``bench_core.time_gpunet``, on ``host``."""
    with owning_numpy_arrays(host):
        return time_gpunet(x, y, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size_options(parser)
    parser.add_argument("--repeats", type=int, default=21,
                        help="epochs timed for each, interleaved (default 21)")
    args = parser.parse_args()
    print(f"{'batch':>5} {'numpy ratio min/median/max':>27} {'C stages ratio min/median/max':>30}")
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(1, user_api="blas"):
        host = HostStages(build(Path(folder)))
        for batch in args.batch_sizes:
            x, y = data(args.samples_batch1 if batch == 1 else args.samples)
            if not same_numbers(host, x, y, batch):
                sys.exit(f"host_stages: batch {batch}: the C stages' epoch differs from NumPy's")
            plain, numpy, stages = interleaved(
                [functools.partial(time_plain, x, y, batch),
                 functools.partial(time_gpunet, x, y, batch),
                 functools.partial(time_host, x, y, batch, host)], args.repeats)
            print(f"{batch:>5} {ratios(plain, numpy):>27} {ratios(plain, stages):>30}")


if __name__ == "__main__":
    main()

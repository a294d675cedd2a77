"""The NumPy backend's eager operations in C (``host_operations.py``): each
gives ``Backend``'s NumPy numbers bit for bit, runs the C where it applies and
NumPy's where it does not, and a user's loop gives the same epoch with the C
on, off, or without a compiler, its matrix products aside (host_gemm.c's, in
an order of their own: tests/backend/test_host_gemm.py)."""
from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.backend import host_c, host_gemm
from gpunet.backend.base import Backend
from gpunet.backend.draw_window import DrawWindow
from gpunet.backend.numpy_backend import NumpyBackend

if isinstance(_reason := host_c.library(), str):
    pytest.skip(f"no host C: {_reason}", allow_module_level=True)

from benchmarks.bench_core import data, deep_model, public_epoch  # noqa: E402

C_OPERATIONS = ("dropout", "softmax_cross_entropy", "momentum_update")
SHAPES = [(1, 10), (7, 13), (128, 30)]


def backends(key: int = 12345) -> tuple[NumpyBackend, NumpyBackend]:
    """Two NumPy backends at the same point of one random stream: the C on, off."""
    on, off = NumpyBackend(), NumpyBackend()
    off.use_host_c(False)
    for backend in (on, off):
        backend.restart(key, 17)
    return on, off


def same(got, want) -> bool:
    return all(np.asarray(g).dtype == np.asarray(w).dtype and np.asarray(g).shape ==
               np.asarray(w).shape and np.asarray(g).tobytes() == np.asarray(w).tobytes()
               for g, w in zip(got, want, strict=True))


@pytest.fixture
def numpy_only(monkeypatch):
    """Fails a test if a NumPy version of a C operation runs."""
    def refused(*args, **kwargs):
        raise AssertionError("the NumPy version of an operation the C covers ran")

    for name in C_OPERATIONS:
        monkeypatch.setattr(Backend, name, refused)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p, scale", [(0.1, 1 / 0.9), (0.5, 1.0), (0.0, 1.0), (0.3, 2.5)])
def test_dropout_in_c_is_numpys_bit_for_bit(shape, p, scale):
    on, off = backends()
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    for _ in range(3):  # the stream advances alike
        assert same(on.dropout(x, p, scale), off.dropout(x, p, scale))
    assert on.drawn == off.drawn


def test_dropout_in_c_takes_a_windows_draws():
    on, off = backends()
    x = np.ones((4, 30), np.float32)
    window = DrawWindow(start=4, rows=12)
    assert same(on.dropout(x, 0.2, 1.25, window), off.dropout(x, 0.2, 1.25, window))
    assert on.drawn == off.drawn


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 1 / 128, 3])
def test_softmax_cross_entropy_in_c_is_numpys_bit_for_bit(shape, scale):
    on, off = backends()
    rng = np.random.default_rng(2)
    z = (rng.standard_normal(shape) * 30).astype(np.float32)
    z[0, :2] = [3e38, -3e38]  # logits 6e38 apart: z - max z is -inf
    if shape[0] > 1:
        z[1, 0] = np.nan
        z[-1, :] = np.inf
    a = np.eye(shape[1], dtype=np.float32)[rng.integers(0, shape[1], shape[0])]
    with np.errstate(invalid="ignore"):
        assert same(on.softmax_cross_entropy(z, a, scale), off.softmax_cross_entropy(z, a, scale))


@pytest.mark.parametrize("size", [1, 7, 23_970])
def test_momentum_update_in_c_is_numpys_bit_for_bit(size):
    rng = np.random.default_rng(3)
    param, velocity, grad = (rng.standard_normal(size).astype(np.float32) for _ in range(3))
    arrays = {way: (param.copy(), velocity.copy()) for way in ("on", "off")}
    on, off = backends()
    for backend, way in ((on, "on"), (off, "off")):
        for _ in range(3):
            backend.momentum_update(*arrays[way], grad, 0.01, 0.99, np.empty_like(param))
    assert same(arrays["on"], arrays["off"])


def test_the_covered_cases_run_the_c(numpy_only):
    on, _ = backends()
    x = np.ones((3, 5), np.float32)
    on.dropout(x, 0.1, 1 / 0.9)
    on.softmax_cross_entropy(x, np.eye(5, dtype=np.float32)[:3], 1 / 3)
    on.momentum_update(x.copy(), x.copy(), x, 0.1, 0.9)


def read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@pytest.mark.parametrize("operation, arguments", [
    ("dropout", lambda: (read_only(np.ones((3, 5), np.float32)), 0.1, 2.0)),
    ("softmax_cross_entropy", lambda: (read_only(np.ones((3, 5), np.float32)),
                                       read_only(np.eye(5, dtype=np.float32)[:3]), 1 / 3)),
])
def test_read_only_inputs_run_the_c(numpy_only, operation, arguments):
    on, _ = backends()
    getattr(on, operation)(*arguments())


def test_a_momentum_update_of_adjacent_arrays_and_a_read_only_gradient_runs_the_c(numpy_only):
    """Arrays that touch but do not overlap (one buffer's neighbouring slices)."""
    on, _ = backends()
    buffer = np.linspace(1, 2, 18, dtype=np.float32)
    on.momentum_update(buffer[0:6], buffer[6:12], buffer[12:18], 0.1, 0.5)
    on.momentum_update(buffer[12:18], buffer[6:12], buffer[0:6], 0.1, 0.5)
    on.momentum_update(buffer[6:12], buffer[0:6], read_only(buffer[12:18].copy()), 0.1, 0.5)


@pytest.mark.parametrize("operation, arguments", [
    ("dropout", lambda: (np.ones((3, 5), np.float64), 0.1, 2.0)),
    ("dropout", lambda: (np.ones((5, 3), np.float32).T, 0.1, 2.0)),
    ("dropout", lambda: (np.ones((0, 3), np.float32), 0.1, 2.0)),
    ("softmax_cross_entropy", lambda: (np.ones((0, 5), np.float32),
                                       np.ones((0, 5), np.float32), 1.0)),
    ("softmax_cross_entropy", lambda: (np.ones((3, 5), np.float32),
                                       np.full((3, 5), 0.2, np.float32), 1.0)),  # not one-hot
    ("softmax_cross_entropy", lambda: (np.ones(5, np.float32), np.eye(5, dtype=np.float32)[1],
                                       1.0)),  # one row, one axis
    ("softmax_cross_entropy", lambda: (np.ones((3, 5), np.float32),
                                       np.eye(5, dtype=np.int64)[:3], 1.0)),
    ("softmax_cross_entropy", lambda: (np.ones((3, 5), np.float32),
                                       np.eye(5, dtype=np.float32)[:3], np.float64(0.1))),
    ("momentum_update", lambda: (np.ones(4, np.float64), np.ones(4), np.ones(4), 0.1, 0.9)),
    ("momentum_update", lambda: (np.ones(0, np.float32), np.ones(0, np.float32),
                                 np.ones(0, np.float32), 0.1, 0.9)),
    ("momentum_update", lambda: (np.ones(4, np.float32), np.ones(4, np.float32),
                                 np.ones(8, np.float32)[::2], 0.1, 0.9)),
])
def test_what_the_c_does_not_cover_is_numpys(operation, arguments):
    on, off = backends()
    got_arguments, want_arguments = arguments(), arguments()
    got = getattr(on, operation)(*got_arguments)
    want = getattr(off, operation)(*want_arguments)
    assert same(got or (), want or ()) and same(got_arguments[:2], want_arguments[:2])


@pytest.mark.parametrize("views", [
    lambda buffer: (buffer[2:8], buffer[0:6], buffer[10:16]),   # param and velocity
    lambda buffer: (buffer[2:8], buffer[10:16], buffer[0:6]),   # param and gradient
    lambda buffer: (buffer[0:6], buffer[10:16], buffer[10:16]),  # velocity as the gradient
], ids=["param-velocity", "param-grad", "velocity-grad"])
def test_a_momentum_update_of_overlapping_arrays_is_numpys(views):
    """NumPy updates the whole velocity, then the whole parameter, each pass
    reading what the one before wrote: overlapping arrays are NumPy's."""
    on, off = backends()
    buffers = {way: np.linspace(1, 2, 16, dtype=np.float32) for way in ("on", "off")}
    for backend, way in ((on, "on"), (off, "off")):
        backend.momentum_update(*views(buffers[way]), 0.1, 0.5)
    assert same([buffers["on"]], [buffers["off"]])


def test_turned_off_the_c_never_runs_and_says_why(numpy_backend, monkeypatch):
    monkeypatch.setattr(numpy_backend, "host_c_on", True)
    assert numpy_backend.host_library() is host_c.library()
    numpy_backend.use_host_c(False)
    assert numpy_backend.host_library() == "host C turned off (use_host_c)"
    ran = []
    for name in C_OPERATIONS:
        monkeypatch.setattr(Backend, name, lambda *args, name=name, **kwargs: ran.append(name))
    x = np.ones((3, 5), np.float32)
    numpy_backend.dropout(x, 0.1, 2.0)
    numpy_backend.softmax_cross_entropy(x, np.eye(5, dtype=np.float32)[:3], 1.0)
    numpy_backend.momentum_update(x.copy(), x.copy(), x, 0.1, 0.9)
    assert ran == list(C_OPERATIONS)


def one_epoch(x: np.ndarray, y: np.ndarray, batch: int) -> tuple[float, bytes]:
    """A user's epoch of the deep model on the NumPy backend: its loss, and its
    parameters after."""
    model = deep_model()
    total = public_epoch(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99),
                         x, y, batch)
    return total, np.concatenate([p.ravel() for p in model.params()]).tobytes()


@pytest.mark.parametrize("batch, samples", [(1, 40), (16, 320), (128, 512)])
def test_a_users_epoch_is_the_same_with_the_c_on_off_or_missing(numpy_backend, monkeypatch,
                                                                  batch, samples):
    """The same, the products NumPy's in each (with the C on, host_gemm.c's where the
    CPU has AVX-512F)."""
    x, y = data(samples)
    monkeypatch.setattr(host_gemm, "kernels", lambda: None)
    with monkeypatch.context() as patched:
        patched.setattr(Backend, "dropout", None)  # the C's, or this test fails
        patched.setattr(Backend, "softmax_cross_entropy", None)
        patched.setattr(Backend, "momentum_update", None)
        with_c = one_epoch(x, y, batch)
    monkeypatch.setattr(numpy_backend, "host_c_on", False)
    assert one_epoch(x, y, batch) == with_c
    monkeypatch.setattr(numpy_backend, "host_c_on", True)
    monkeypatch.setattr(host_c, "library", lambda: "no C compiler: cc is not on PATH")
    assert one_epoch(x, y, batch) == with_c

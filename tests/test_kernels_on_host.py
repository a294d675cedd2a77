"""The CUDA kernels' operations, run on the host against the NumPy backend.

Each kernel's operation text, verbatim, is compiled with g++ as a plain C++
function (``kernel_source.render(..., "host")``: every placeholder ``float``,
then ``double``), loaded with ctypes and run on NumPy arrays the way CuPy would
pass them (``run``). Every operation of gpunet's CupyBackend, its kernels run
that way and its arrays NumPy's (``kernels``), then matches the NumPy backend's operation in float32
and float64, over sizes 0 to 1000 and the extremes the docstrings promise.

This proves the formulas: the arithmetic, the handling of inf and NaN, the row
loops and their indexing, the order of the arguments. It does not run CUDA:
not NVRTC's code (tests/test_nvrtc.py compiles that), nor CUDA's libm, its
flushed float32 denormals or fused multiply-adds, nor CuPy's binding of strided
and broadcast arrays; tests/test_cupy_kernels.py checks all that on a GPU.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest

import gpunet
from gpunet.backend.kernels import KERNELS
from kernel_source import PLACEHOLDERS, params, render

if shutil.which("g++") is None:
    pytest.skip("g++ is not on PATH, so the kernels cannot be compiled for the host "
                "(apt-get install g++)", allow_module_level=True)

DTYPES = (np.float32, np.float64)
C_TYPES = {np.float32: "float", np.float64: "double"}
SIZES = (0, 1, 7, 1000)
# glibc's libm and CUDA's differ by ulps (and both from NumPy's own loops), so
# these tolerances check the formulas, not CUDA's rounding. atol only matters
# near zero: large values (losses up to 2e3, gradients up to 1e4) are within
# rtol, as no formula here cancels, so atol needs no scaling by magnitude.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 2e-6, np.float64: 1e-14}
# Placed first in the drawn values, as many as fit: every activation meets
# them at n = 1000.
EXTREMES = (1e4, -1e4, np.inf, -np.inf, np.nan, 0.0, -0.0, 88.0, -88.0, 800.0, -800.0)
# (y, gy) pairs for the gradients: a NaN or infinite gy where y <= 0 and y > 0, a NaN y.
GRAD_EXTREMES = ((0.0, np.inf), (-1.0, np.nan), (2.0, np.inf), (np.nan, 1.0),
                 (-0.0, -np.inf), (1.0, np.nan), (0.5, 1e4), (-2.0, -np.inf))

Run = Callable[..., Any]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    """``run(name, dtype, *args)``: kernel ``name`` compiled for ``dtype``, called
    as CuPy calls it: inputs then outputs, positional; outputs left off are
    allocated; returns the outputs (one, or a tuple)."""
    folder = tmp_path_factory.mktemp("kernels")
    builds = {}
    for dtype in DTYPES:  # one library per dtype, every kernel in it; both compile at once
        types = dict.fromkeys(PLACEHOLDERS, C_TYPES[dtype])
        source = folder / f"kernels_{dtype.__name__}.cpp"
        source.write_text("\n".join(render(spec, types, "host") for spec in KERNELS.values()))
        library = source.with_suffix(".so")
        command = ["g++", "-O1", "-shared", "-fPIC", "-std=c++17", str(source), "-o", str(library)]
        builds[dtype] = (library, subprocess.Popen(command, stderr=subprocess.PIPE, text=True))
    libraries = {}
    for dtype, (library, build) in builds.items():
        _, errors = build.communicate()
        assert build.returncode == 0, f"g++ fails for {dtype.__name__}:\n{errors}"
        libraries[dtype] = ctypes.CDLL(str(library))

    def run(name: str, dtype: Any, *args: Any) -> Any:
        ps = params(KERNELS[name])
        n_in = sum(not p.output for p in ps)
        if len(args) not in (n_in, len(ps)):
            raise TypeError(f"{name} takes {n_in} or {len(ps)} arguments, got {len(args)}")
        types = [np.dtype(dtype) if p.type in PLACEHOLDERS else np.dtype(p.type) for p in ps]
        shape = np.broadcast_shapes(*(np.shape(a) for p, a in zip(ps, args) if not p.raw))
        given = list(args) + [np.empty(shape, t) for t in types[len(args):]]
        buffers = []
        for p, t, arg in zip(ps, types, given):
            if p.output:
                assert isinstance(arg, np.ndarray) and arg.dtype == t, f"{name}: output {p.name}"
            value = np.asarray(arg, t)  # a Python scalar becomes the declared type
            buffers.append(np.array(value if p.raw else np.broadcast_to(value, shape), order="C"))
        function = getattr(libraries[dtype], KERNELS[name].name)
        function.argtypes = [ctypes.c_void_p] * len(ps) + [ctypes.c_ssize_t]
        function(*(b.ctypes.data for b in buffers), int(np.prod(shape)))
        outputs = []
        for p, arg, buffer in zip(ps, given, buffers):
            if p.output:
                arg[...] = buffer  # read-modify-write outputs come back to the caller's array
                outputs.append(arg)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    return run


@pytest.fixture(scope="module")
def kernels(run) -> Any:
    """gpunet's own CupyBackend, with CuPy swapped out of its module for the
    host: NumPy allocates its arrays and ``run`` runs its kernels, so every
    operation's glue (allocations, argument order, scalars) is cupy_backend.py's."""
    pytest.importorskip("cupy", reason="CuPy is not installed (pip install cupy-cuda12x)")
    from gpunet.backend import cupy_backend

    def elementwise(name: str) -> Run:
        return lambda *args: run(name, args[0].dtype.type, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cupy_backend, "cupy", SimpleNamespace(empty=np.empty))
        patch.setattr(cupy_backend, "elementwise", elementwise)
        # Not constructed: a constructed backend would reseed from real CuPy on gpunet.seed.
        yield object.__new__(cupy_backend.CupyBackend)


@pytest.fixture
def cpu() -> gpunet.Backend:
    return gpunet.get_backend("numpy")


def draw(shape: Any, dtype: Any, low: float = -6.0, high: float = 6.0, seed: int = 0,
         extremes: tuple[float, ...] = ()) -> np.ndarray:
    """Uniform values of ``shape``, the first of them (flat) replaced by ``extremes``."""
    x = np.random.default_rng(seed).uniform(low, high, shape)
    count = min(x.size, len(extremes))
    x.flat[:count] = extremes[:count]
    return x.astype(dtype)


def check(got: Any, expected: Any) -> None:
    """``got`` has the dtype and shape of ``expected`` and its values, NaN for NaN."""
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    dtype = expected.dtype.type
    if dtype in RTOL:
        np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=ATOL[dtype])
    else:
        np.testing.assert_array_equal(got, expected)


def expect(cpu: gpunet.Backend, op: str, *args: Any) -> Any:
    """The NumPy backend's ``op``, quiet about the overflows and NaNs it is given."""
    with np.errstate(all="ignore"):
        return getattr(cpu, op)(*args)


CHECKED = set()


def covers(*names: str) -> Callable[[Any], Any]:
    CHECKED.update(names)
    return lambda test: test


@covers("sigmoid", "tanh", "relu")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", ["sigmoid", "tanh", "relu"])
def test_activation(kernels, cpu, op, n, dtype):
    x = draw(n, dtype, extremes=EXTREMES)
    x_before = x.copy()
    check(getattr(kernels, op)(x), expect(cpu, op, x))
    np.testing.assert_array_equal(x, x_before)
    if op == "sigmoid":  # the exact limits, and NaN stays NaN
        limits = kernels.sigmoid(np.array([1e4, -1e4, np.inf, -np.inf, np.nan], dtype))
        np.testing.assert_array_equal(limits, [1, 0, 1, 0, np.nan])


@covers("sigmoid_grad", "tanh_grad", "relu_grad")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", ["sigmoid_grad", "tanh_grad", "relu_grad"])
def test_activation_grad(kernels, cpu, op, n, dtype):
    y_extremes, gy_extremes = zip(*GRAD_EXTREMES)
    y = draw(n, dtype, -1.5, 1.5, seed=1, extremes=y_extremes)
    gy = draw(n, dtype, -3.0, 3.0, seed=2, extremes=gy_extremes)
    check(getattr(kernels, op)(y, gy), expect(cpu, op, y, gy))


def row_shape(rows: int | None, k: int) -> tuple[int, ...]:
    """(rows, k), or one (k,) row for ``rows=None``."""
    return (k,) if rows is None else (rows, k)


@covers("softmax_cross_entropy")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", ["one-hot", "probabilities"])
@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("rows", [*SIZES, None])
def test_softmax_cross_entropy(kernels, cpu, rows, k, target, dtype):
    rng = np.random.default_rng(3)
    shape = row_shape(rows, k)
    # Rows of logits of every size from 1 to 1e3, where a naive softmax overflows.
    z = rng.uniform(-1, 1, shape) * 10.0 ** rng.uniform(0, 3, shape[:-1] + (1,))
    z.flat[:2] = (1e3, -1e3)[:z.size]
    z = z.astype(dtype)
    if target == "one-hot":
        a = np.eye(k, dtype=dtype)[rng.integers(0, k, shape[:-1])]
    else:
        a = rng.uniform(0, 1, shape).astype(dtype)
        a /= a.sum(axis=-1, keepdims=True)
    scale = 1 / rows if rows else 1.0  # a mean over the rows
    losses, gradient = kernels.softmax_cross_entropy(z, a, scale)
    expected_losses, expected_gradient = expect(cpu, "softmax_cross_entropy", z, a, scale)
    assert np.isfinite(losses).all() and np.isfinite(gradient).all()
    check(losses, expected_losses)
    check(gradient, expected_gradient)


@covers("matches")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("rows", [*SIZES, None])
def test_matches(kernels, cpu, rows, k, dtype):
    rng = np.random.default_rng(4)
    shape = row_shape(rows, k)
    # Few distinct values, so rows tie often (the first largest wins), and NaNs (largest).
    choices = [0.0, -0.0, 1.0, 2.0, np.inf, -np.inf, np.nan]
    p, t = (rng.choice(choices, shape).astype(dtype) for _ in range(2))
    check(kernels.matches(p, t), expect(cpu, "matches", p, t))
    out = np.zeros(shape[:-1], bool)
    assert kernels.matches(p, t, out) is out
    check(out, expect(cpu, "matches", p, t))


@covers("dropout")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5])
@pytest.mark.parametrize("n", SIZES)
def test_dropout(kernels, cpu, n, p, dtype):
    """The kernel draws its own mask: the same one the NumPy backend draws from
    the same key and counter, so CPU and GPU runs drop the same units."""
    x = draw(n, dtype, extremes=(np.inf, np.nan, -1e4))
    scale = 1 / (1 - p)
    for backend in (kernels, cpu):
        backend.restart(12345, 678)
    y, mask = kernels.dropout(x, p, scale)
    expected_y, expected_mask = expect(cpu, "dropout", x, p, scale)
    assert kernels.drawn == cpu.drawn == 678 + n
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_array_equal(y, expected_y)
    assert mask.dtype == y.dtype == dtype


@covers("sgd_update", "momentum_update")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", ["sgd_update", "momentum_update"])
def test_update(kernels, cpu, op, n, dtype):
    # param (and velocity), updated in place, then the gradient and hyperparameters
    n_state, hyper = (1, (0.1,)) if op == "sgd_update" else (2, (0.1, 0.9))
    state = [draw(n, dtype, seed=seed) for seed in (5, 6)][:n_state]
    grad = draw(n, dtype, seed=7)
    on_host, on_cpu = [x.copy() for x in state], [x.copy() for x in state]
    getattr(kernels, op)(*on_host, grad, *hyper)  # in place, as on the device
    getattr(cpu, op)(*on_cpu, grad, *hyper)
    for got, expected in zip(on_host, on_cpu):
        check(got, expected)


def test_every_kernel_is_checked():
    assert CHECKED == set(KERNELS)

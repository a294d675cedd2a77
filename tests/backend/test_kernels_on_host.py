"""The CUDA kernels' operations, run on the host against the NumPy backend.

Each kernel's operation text, verbatim, is compiled with g++ as a plain C++
function (``kernel_source.render(..., "host")``), loaded with ctypes and run on
NumPy arrays the way CuPy would pass them, its type placeholders bound to the
arrays' dtypes by CuPy's rules, mismatches refused (``run``). Every operation of
gpunet's CupyBackend, its kernels run that way and its arrays NumPy's
(``kernels``), then matches the NumPy backend's operation in float32 and
float64, over sizes 0 to 1000 and the extremes the docstrings promise, and on
the inputs of mixed dtypes the NumPy backend takes.

This proves the formulas: the arithmetic, the handling of inf and NaN, the row
and column loops and their indexing, the order of the arguments, the dropout
masks bit for bit. The block kernels (``block_kernels/``: a dense stage's
backward, the output stage, the fallback GEMM) run through the host's OpenMP
blocks (``helpers/block_kernel_source.py``). Eager ``gemm`` is ``cupy.matmul`` and a
recorded step's is libcublas (tests/backend/test_cublas_capture.py), so neither is
run here. It does not run CUDA:
not NVRTC's code (tests/backend/test_nvrtc.py compiles that), nor CUDA's libm, its
flushed float32 denormals or fused multiply-adds, nor CuPy's binding of strided
and broadcast arrays; tests/backend/test_cupy_kernels.py checks all that on a GPU.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest

import gpunet
from gpunet.backend.activations import ACTIVATIONS as FORMULAS, ActivationCall
from gpunet.backend.draw_window import DrawWindow
from gpunet.backend.graph_step import StateRows, graph_state
from gpunet.backend.kernels import DENSE_VARIANTS, KERNELS, KernelSpec, dense_kernel
from gpunet.backend.side_stream import Branches
from gpunet.backend import block_kernels
from gpunet.backend.block_kernels import BLOCK_KERNELS, FUSED_ROWS, slices
from helpers.block_kernel_source import build_host_launch, check_sums, prefetched
from helpers.dense_passes import CHAINS, passes_arguments
from helpers.block_kernel_source import params as block_params
from helpers.kernel_source import C_TYPES, PLACEHOLDERS, Param, params, render

if shutil.which("g++") is None:
    pytest.skip("g++ is not on PATH, so the kernels cannot be compiled for the host "
                "(apt-get install g++)", allow_module_level=True)

DTYPES = (np.float32, np.float64)
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
# Every activation of the table (gpunet/backend/activations.py), at its scalars' defaults.
NAMES = list(FORMULAS)
GRADIENTS = [f"{name}_grad" for name in NAMES]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    """``run(name, *args, size=None)``: kernel ``name`` called as CuPy calls it:
    inputs then outputs, positional; outputs left off are allocated; ``size``
    threads where every array is raw; returns the outputs (one, or a tuple).
    Its types are bound as CuPy binds them (``bind``)."""
    folder = tmp_path_factory.mktemp("kernels")

    def compile_(specs: list[KernelSpec], types: dict[str, str], stem: str) -> Any:
        source = folder / f"{stem}.cpp"
        source.write_text("\n".join(render(spec, types, "host") for spec in specs))
        command = ["g++", "-O1", "-shared", "-fPIC", "-std=c++17", str(source),
                   "-o", str(source.with_suffix(".so"))]
        return source.with_suffix(".so"), subprocess.Popen(command, stderr=subprocess.PIPE,
                                                          text=True)

    def load(library: Any, build: Any) -> ctypes.CDLL:
        _, errors = build.communicate()
        assert build.returncode == 0, f"g++ fails for {library.name}:\n{errors}"
        return ctypes.CDLL(str(library))

    # Every kernel, every placeholder one float type: both builds run at once.
    builds = {c: compile_(list(KERNELS.values()), dict.fromkeys(PLACEHOLDERS, c), f"kernels_{c}")
              for c in (C_TYPES[np.dtype(d).name] for d in DTYPES)}
    prebuilt = {c: load(*build) for c, build in builds.items()}
    alone: dict[tuple, ctypes.CDLL] = {}

    def function(name: str, types: dict[str, str]) -> Any:
        """Kernel ``name`` with placeholder C ``types``: from a prebuilt library
        when they are one float type, else built alone (once)."""
        c_types = set(types.values())
        if len(c_types) == 1 and c_types <= prebuilt.keys():
            return getattr(prebuilt[c_types.pop()], KERNELS[name].name)
        key = (name, *sorted(types.items()))
        if key not in alone:
            alone[key] = load(*compile_([KERNELS[name]], types, f"{name}_{len(alone)}"))
        return getattr(alone[key], KERNELS[name].name)

    def run(name: str, *args: Any, size: int | None = None) -> Any:
        ps = params(KERNELS[name])
        n_in = sum(not p.output for p in ps)
        if len(args) not in (n_in, len(ps)):
            raise TypeError(f"{name} takes {n_in} or {len(ps)} arguments, got {len(args)}")
        bound = bind(ps, args)
        types = [bound[p.type] if p.type in PLACEHOLDERS else np.dtype(p.type) for p in ps]
        # CuPy's size=, where every array is raw: the scalars' shape, one per thread
        shape = (size,) if size is not None else np.broadcast_shapes(
            *(np.shape(a) for p, a in zip(ps, args) if not p.raw))
        given = list(args) + [np.empty(shape, t) for t in types[len(args):]]
        buffers = []
        for p, t, arg in zip(ps, types, given):
            value = np.asarray(arg, t)  # a Python scalar becomes the declared type
            buffers.append(np.array(value if p.raw else np.broadcast_to(value, shape), order="C"))
        fn = function(name, {t: C_TYPES[d.name] for t, d in bound.items()})
        fn.argtypes = [ctypes.c_void_p] * len(ps) + [ctypes.c_ssize_t]
        fn(*(b.ctypes.data for b in buffers), int(np.prod(shape)))
        if np.prod(shape) > 0:  # the kernel ran over elements: each recording notes it
            for ran in RECORDING:
                ran.add(name)
        outputs = []
        for p, arg, buffer in zip(ps, given, buffers):
            if p.output:
                arg[...] = buffer  # read-modify-write outputs come back to the caller's array
                outputs.append(arg)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    return run


def bind(ps: list[Param], args: tuple) -> dict[str, np.dtype]:
    """Each placeholder's dtype, as CuPy decides it (``_decide_params_type_core``
    in cupy/_core/_kernel.pyx): outputs first, then inputs, each array binds its
    placeholder to its dtype, and an array whose dtype differs from its
    placeholder's binding or its declared type is refused; scalars bind nothing."""
    bound: dict[str, np.dtype] = {}
    for p, arg in sorted(zip(ps, args), key=lambda pair: not pair[0].output):
        if isinstance(arg, np.ndarray):
            want = bound.setdefault(p.type, arg.dtype) if p.type in PLACEHOLDERS else np.dtype(p.type)
            if arg.dtype != want:
                raise TypeError(f"Type is mismatched. {p.name} {arg.dtype} {want}")
    return bound


@pytest.fixture(scope="module")
def block_launch(tmp_path_factory) -> Run:
    """``launches.launch`` on the host (tests/helpers/block_kernel_source.py), with
    the row chains of CHAINS."""
    return build_host_launch(tmp_path_factory.mktemp("block_kernels"),
                             tuple(stages for stages, _, _ in CHAINS.values()))


def patch_cupy(patch: pytest.MonkeyPatch, name: str, value: Any) -> None:
    """``name`` set to ``value`` by ``patch`` in each module of CupyBackend's that
    has it (cupy_backend.py, cupy_planned_step.py, cupy_graph_step.py)."""
    from gpunet.backend import cupy_backend, cupy_graph_step, cupy_planned_step
    for module in (cupy_backend, cupy_planned_step, cupy_graph_step):
        if hasattr(module, name):
            patch.setattr(module, name, value)


@pytest.fixture(scope="module")
def kernels(run, block_launch) -> Any:
    """gpunet's own CupyBackend, with CuPy swapped out of its module for the
    host: NumPy allocates its arrays, ``run`` runs its kernels and
    ``block_launch`` its block kernels, so every operation's glue (allocations,
    argument order, scalars) is cupy_backend.py's."""
    pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[kernels]')")
    from gpunet.backend import cupy_backend

    def elementwise(name: str) -> Run:
        return lambda *args, **size: run(name, *args, **size)

    def launch(name: str, dtype: Any, grid: Any, block: Any, args: tuple, bound: Any = None
               ) -> None:
        """``block_launch``; a grid kernel over elements counts as its row's run;
        a bound launch notes the stream each replay gives it in STREAMS."""
        block_launch(name, dtype, grid, block, args, bound)
        LAUNCHED.append(name)
        if bound is not None:
            again = bound[-1]
            bound[-1] = lambda stream: (STREAMS.append(stream), again(stream))
        if name.startswith("grid_"):
            n = [p.name for p in block_params(BLOCK_KERNELS[name].params)].index("n")
            for ran in RECORDING if args[n] > 0 else ():
                ran.add(name.removeprefix("grid_"))

    with pytest.MonkeyPatch.context() as patch:
        patch_cupy(patch, "cupy", SimpleNamespace(empty=np.empty,
                                                  ascontiguousarray=np.ascontiguousarray))
        patch_cupy(patch, "elementwise", elementwise)
        patch.setattr(block_kernels.launches, "launch", launch)
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


def check(got: Any, expected: Any, precision: Any = None) -> None:
    """``got`` has the dtype and shape of ``expected`` and its values, NaN for
    NaN, within the tolerance of ``precision`` (default: that dtype)."""
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    dtype = precision or expected.dtype.type
    if dtype in RTOL:
        np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=ATOL[dtype])
    else:
        np.testing.assert_array_equal(got, expected)


def expect(cpu: gpunet.Backend, op: str, *args: Any) -> Any:
    """The NumPy backend's ``op``, quiet about the overflows and NaNs it is given."""
    with np.errstate(all="ignore"):
        return getattr(cpu, op)(*args)


# Each test checking kernels, with the kernels it says it checks; the sets of kernel
# names ``run`` adds to while a recording is made (test_every_kernel_is_checked).
COVERS: dict[Callable[..., Any], set[str]] = {}
RECORDING: list[set[str]] = []
STREAMS: list[int] = []  # the streams bound launches were given (kernels' launch)
LAUNCHED: list[str] = []  # the block kernels kernels' launch ran, by name


def covers(*names: str) -> Callable[[Any], Any]:
    """Declare that the test runs kernels ``names`` (over at least one element);
    test_every_kernel_is_checked runs it to see that it does."""
    def declare(test: Callable[..., Any]) -> Callable[..., Any]:
        COVERS.setdefault(test, set()).update(names)
        return test
    return declare


def parametrizations(test: Callable[..., Any]) -> list[dict[str, Any]]:
    """Every combination of ``test``'s parametrize marks' values, as pytest makes them."""
    grid: list[dict[str, Any]] = [{}]
    for mark in getattr(test, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names, values = mark.args[:2]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        rows = [tuple(v.values) if hasattr(v, "values") and hasattr(v, "marks")
                else (v,) if len(names) == 1 else tuple(v) for v in values]
        grid = [{**point, **dict(zip(names, row))} for row in rows for point in grid]
    return grid


@covers(*NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", NAMES)
def test_activation(kernels, cpu, op, n, dtype):
    x = draw(n, dtype, extremes=EXTREMES)
    x_before = x.copy()
    check(getattr(kernels, op)(x), expect(cpu, op, x))
    np.testing.assert_array_equal(x, x_before)
    if op == "sigmoid":  # the exact limits, and NaN stays NaN
        limits = kernels.sigmoid(np.array([1e4, -1e4, np.inf, -np.inf, np.nan], dtype))
        np.testing.assert_array_equal(limits, [1, 0, 1, 0, np.nan])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", NAMES)
def test_activation_into_out(kernels, cpu, op, dtype):
    """``out=`` takes the result, also when it is the input (in place)."""
    x = draw(100, dtype, extremes=EXTREMES)
    expected = expect(cpu, op, x)
    out = np.empty_like(x)
    assert getattr(kernels, op)(x, out=out) is out
    check(out, expected)
    assert getattr(kernels, op)(x, out=x) is x
    check(x, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", GRADIENTS)
def test_activation_grad_into_out(kernels, cpu, op, dtype):
    """``out=`` takes the result, also when it is the gradient gy (in place)."""
    y_extremes, gy_extremes = zip(*GRAD_EXTREMES)
    y = draw(100, dtype, -1.5, 1.5, seed=1, extremes=y_extremes)
    gy = draw(100, dtype, -3.0, 3.0, seed=2, extremes=gy_extremes)
    expected = expect(cpu, op, y, gy)
    out = np.empty_like(y)
    assert getattr(kernels, op)(y, gy, out=out) is out
    check(out, expected)
    assert getattr(kernels, op)(y, gy, out=gy) is gy
    check(gy, expected)


@covers(*GRADIENTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", GRADIENTS)
def test_activation_grad(kernels, cpu, op, n, dtype):
    y_extremes, gy_extremes = zip(*GRAD_EXTREMES)
    y = draw(n, dtype, -1.5, 1.5, seed=1, extremes=y_extremes)
    gy = draw(n, dtype, -3.0, 3.0, seed=2, extremes=gy_extremes)
    check(getattr(kernels, op)(y, gy), expect(cpu, op, y, gy))


def loss_cases(test: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``test`` over the loss grid: rows (None: one (k,) row), k classes,
    one-hot or probability targets, each float dtype."""
    for name, values in [("rows", [*SIZES, None]), ("k", [1, 3, 10]),
                         ("target", ["one-hot", "probabilities"]), ("dtype", DTYPES)]:
        test = pytest.mark.parametrize(name, values)(test)
    return test


def row_shape(rows: int | None, k: int) -> tuple[int, ...]:
    """(rows, k), or one (k,) row for ``rows=None``."""
    return (k,) if rows is None else (rows, k)


@covers("softmax_cross_entropy")
@loss_cases
def test_softmax_cross_entropy(kernels, cpu, rows, k, target, dtype):
    z, a = logits_and_targets(rows, k, target, dtype)
    scale = 1 / rows if rows else 1.0  # a mean over the rows
    losses, gradient = kernels.softmax_cross_entropy(z, a, scale)
    expected_losses, expected_gradient = expect(cpu, "softmax_cross_entropy", z, a, scale)
    assert np.isfinite(losses).all() and np.isfinite(gradient).all()
    check(losses, expected_losses)
    check(gradient, expected_gradient)


def logits_and_targets(rows: int | None, k: int, target: str,
                       dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rows of logits of every size from 1 to 1e3, where a naive softmax
    overflows, and one-hot or probability targets."""
    rng = np.random.default_rng(3)
    shape = row_shape(rows, k)
    z = rng.uniform(-1, 1, shape) * 10.0 ** rng.uniform(0, 3, shape[:-1] + (1,))
    z.flat[:2] = (1e3, -1e3)[:z.size]
    if target == "one-hot":
        a = np.eye(k)[rng.integers(0, k, shape[:-1])]
    else:
        a = rng.uniform(0, 1, shape)
        a /= a.sum(axis=-1, keepdims=True)
    return z.astype(dtype), a.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_skips_terms_of_weight_zero(kernels, cpu, dtype):
    big = 0.9 * np.finfo(dtype).max
    z = np.array([[big, -big, 0.0], [big, -big, 0.0]], dtype)
    a = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype)
    losses, gradient = kernels.softmax_cross_entropy(z, a, 1.0)
    np.testing.assert_array_equal(losses, [0.0, np.inf])
    np.testing.assert_array_equal(gradient, [[0, 0, 0], [1, -1, 0]])
    check(losses, expect(cpu, "softmax_cross_entropy", z, a, 1.0)[0])


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


# A planned step's operations (gpunet/backend/planned_step.py), every variant,
# against the NumPy backend's, which are the eager layers' own calls.
ACTIVATIONS = [None, *NAMES]
DENSE_SHAPES = [(0, 3), (1, 1), (7, 3), (100, 30)]
DROPOUTS = [None, (0.3, 1 / 0.7), (0.1, 1.0)]  # (p, scale): inverted, and the notebook's


def both(kernels: Any, cpu: gpunet.Backend, call: Callable[[Any], Any]) -> list[Any]:
    """``call(backend)`` on the host kernels and on the NumPy backend, quietly."""
    with np.errstate(all="ignore"):
        return [call(backend) for backend in (kernels, cpu)]


@covers(*(dense_kernel("forward", *variant) for variant in DENSE_VARIANTS))
@pytest.mark.parametrize("in_place", [False, True], ids=["into_y", "z_is_y"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", DENSE_SHAPES)
@pytest.mark.parametrize("dropout", DROPOUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_forward(kernels, cpu, activation, dropout, shape, dtype, in_place):
    """y = activation((z + bias) * mask), the mask exactly the one the NumPy
    backend draws from the same key and counters."""
    z = draw(shape, dtype, seed=8, extremes=EXTREMES)
    bias = draw(shape[-1:], dtype, -1.0, 1.0, seed=9)

    def forward(backend: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
        backend.restart(12345, 678)
        given = z.copy()
        y = given if in_place else np.full(shape, np.nan, dtype)
        mask = None if dropout is None else np.full(shape, np.nan, dtype)
        result = backend.dense_forward(given, bias, y, activation=activation, dropout=dropout,
                                       mask=mask)
        return result, y, mask, backend.drawn

    (result, y, mask, drawn), (expected_y, _, expected_mask, expected_drawn) = both(
        kernels, cpu, forward)
    assert result is y
    check(y, expected_y)
    assert drawn == expected_drawn == 678 + (0 if dropout is None else z.size)
    if dropout is not None:
        np.testing.assert_array_equal(mask, expected_mask)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", DENSE_SHAPES)
@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_backward(kernels, cpu, activation, dropout, shape, dtype):
    """dz = f'(y) gy (times the mask) and db, its sums over the rows; with
    neither, gy itself and its sums."""
    y_extremes, gy_extremes = zip(*GRAD_EXTREMES)
    y = draw(shape, dtype, -1.5, 1.5, seed=1, extremes=y_extremes) if activation else None
    gy = draw(shape, dtype, -3.0, 3.0, seed=2, extremes=gy_extremes)
    mask = (draw(shape, dtype, 0.0, 1.0, seed=11) >= 0.3) * dtype(1 / 0.7) if dropout else None

    def backward(backend: Any) -> tuple[np.ndarray, np.ndarray]:
        dz, db = np.full(shape, np.nan, dtype), np.full(shape[-1:], np.nan, dtype)
        result = backend.dense_backward(y, gy, dz, db, activation=activation, mask=mask)
        assert result is (dz if activation or dropout else gy)
        return result, db

    (result, db), (expected, expected_db) = both(kernels, cpu, backward)
    check(result, expected)
    check_sums(db, expected_db, expected, RTOL, ATOL)  # summed in another order


@loss_cases
def test_dense_softmax_cross_entropy(kernels, cpu, rows, k, target, dtype):
    """The loss (into float64), the hit and the gradient of logits z + bias, and
    the gradient's column sums, the bias gradient."""
    if rows is None:
        pytest.skip("the output stage takes (N, k) logits")
    z, a = logits_and_targets(rows, k, target, dtype)
    bias = draw(k, dtype, -5.0, 5.0, seed=12)
    scale = 1 / rows if rows else 1.0
    (gradient, losses, hits, db), expected = both(kernels, cpu, dense_loss(z, bias, a, scale))
    assert np.isfinite(losses).all() and np.isfinite(gradient).all()
    check(gradient, expected[0])
    check(losses, expected[1], precision=dtype)
    np.testing.assert_array_equal(hits, expected[2])
    check_sums(db, expected[3], expected[0], RTOL, ATOL)


def dense_loss(z: np.ndarray, bias: np.ndarray, a: np.ndarray, scale: float,
               state: np.ndarray | None = None) -> Callable[[Any], tuple[np.ndarray, ...]]:
    """A backend's dense_softmax_cross_entropy on a copy of ``z``: (gradient,
    losses, hits, db); with a graph step's ``state``, losses and hits as long as ``a``."""
    def call(backend: Any) -> tuple[np.ndarray, ...]:
        gradient, db = np.full(z.shape, np.nan, z.dtype), np.full(z.shape[-1], np.nan, z.dtype)
        losses, hits = np.full(a.shape[:-1], np.nan), np.zeros(a.shape[:-1], bool)
        backend.dense_softmax_cross_entropy(z.copy(), bias, a, scale, gradient, losses, hits, db,
                                            state)
        return gradient, losses, hits, db
    return call


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_softmax_cross_entropy_at_a_graph_states_rows(kernels, cpu, dtype):
    """A graph step's output stage reads its targets and places its losses and
    hits at rows state[OFFSET].. of the epoch's, the others left as they were."""
    z, a = logits_and_targets(4, 3, "one-hot", dtype)
    epoch_targets = np.concatenate([np.zeros((5, 3), dtype), a, np.zeros((2, 3), dtype)])
    bias = draw(3, dtype, -5.0, 5.0, seed=12)
    state = graph_state(5, 0, 0)
    (gradient, losses, hits, db), expected = both(
        kernels, cpu, dense_loss(z, bias, epoch_targets, 0.25, state))
    batch = dense_loss(z, bias, a, 0.25)(cpu)
    np.testing.assert_array_equal(np.isnan(losses), [True] * 5 + [False] * 4 + [True] * 2)
    check(losses[5:9], batch[1][:4], precision=dtype)
    np.testing.assert_array_equal(hits[5:9], batch[2])
    for got, want in zip((gradient, db), (batch[0], batch[3])):
        check(got, want)
    np.testing.assert_array_equal(expected[1][5:9], batch[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_softmax_cross_entropy_hits_as_matches(kernels, cpu, dtype):
    """A hit is ``matches`` of z + bias: the first largest, NaN counting as largest."""
    rng = np.random.default_rng(13)
    choices = [0.0, -0.0, 1.0, 2.0, np.inf, -np.inf, np.nan]
    z, a = (rng.choice(choices, (200, 4)).astype(dtype) for _ in range(2))
    bias = np.array([0.0, 1.0, -1.0, 0.0], dtype)
    (_, _, hits, _), (_, _, expected, _) = both(kernels, cpu, dense_loss(z, bias, a, 1.0))
    np.testing.assert_array_equal(hits, expected)
    np.testing.assert_array_equal(hits, cpu.matches(z + bias, a))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_softmax_cross_entropy_skips_terms_of_weight_zero(kernels, cpu, dtype):
    big = 0.9 * np.finfo(dtype).max
    z = np.array([[big, -big, 0.0], [big, -big, 0.0]], dtype)
    a = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype)
    zero_bias = np.zeros(3, dtype)
    (gradient, losses, hits, _), expected = both(kernels, cpu, dense_loss(z, zero_bias, a, 1.0))
    np.testing.assert_array_equal(losses, [0.0, np.inf])
    np.testing.assert_array_equal(gradient, [[0, 0, 0], [1, -1, 0]])
    np.testing.assert_array_equal(hits, [True, False])
    check(losses, expected[1])


@pytest.mark.parametrize("operation, name, shape", [
    ("dense_backward", "gy", (4, 2)), ("dense_backward", "y", (4, 2)),
    ("dense_backward", "mask", (5, 3)), ("dense_backward", "dz", (3,)),
    ("dense_softmax_cross_entropy", "gradient", (4, 2)),
    ("dense_softmax_cross_entropy", "bias", (2,)),
    ("dense_softmax_cross_entropy", "losses", (3,)),
    ("dense_softmax_cross_entropy", "hits", (4, 1)),
    ("dense_softmax_cross_entropy", "db", (4,))])
def test_dense_operations_refuse_arrays_their_kernels_would_overrun(kernels, operation, name,
                                                                     shape):
    """The column and row kernels index whole arrays by the others' shapes: an
    array of another shape is refused, by name, before any kernel runs."""
    x, row = np.zeros((4, 3), np.float32), np.zeros(3, np.float32)
    args = {
        "dense_backward": dict(y=x, gy=x, dz=x.copy(), db=row, activation="tanh", mask=x),
        "dense_softmax_cross_entropy": dict(z=x, bias=row, a=x, scale=1.0, gradient=x.copy(),
                                            losses=np.zeros(4), hits=np.zeros(4, bool),
                                            db=row.copy()),
    }[operation]
    expected = re.escape(str(args[name].shape))
    args[name] = np.zeros(shape, args[name].dtype)
    with pytest.raises(ValueError, match=rf"^{operation} needs {name} of shape {expected}, "
                                         rf"got {re.escape(str(shape))}$"):
        getattr(kernels, operation)(**args)


# Inputs of two dtypes, as the NumPy backend takes them: each pair (first, second).
MIXED_FLOATS = [(np.float32, np.float64), (np.float64, np.float32)]
TARGET_DTYPES = [np.int64, np.int32, np.bool_, np.float32, np.float64]


@pytest.mark.parametrize("first, second", MIXED_FLOATS)
@pytest.mark.parametrize("op", GRADIENTS)
def test_activation_grad_of_mixed_dtypes(kernels, cpu, op, first, second):
    """y and gy of two dtypes give NumPy's promotion of them (float64), as
    precise as float32 (NumPy rounds 1 - y to float32 where the kernel does not)."""
    y, gy = draw(100, first, -1.5, 1.5, seed=1), draw(100, second, seed=2)
    result = getattr(kernels, op)(y, gy)
    assert result.dtype == np.float64
    check(result, expect(cpu, op, y, gy), precision=np.float32)


@pytest.mark.parametrize("first, second", MIXED_FLOATS)
def test_dense_operations_take_inputs_in_the_dtype_they_write(kernels, cpu, first, second):
    """Inputs of another float dtype are taken in that of the arrays written
    (the logits' for the loss), as precise as float32 (where NumPy rounds once
    more or less)."""
    z, bias = draw((20, 5), first, seed=8), draw(5, second, seed=9)
    y, gy, mask = (draw((20, 5), second, 0.0, 1.0, seed=seed) for seed in (10, 11, 12))
    a = np.eye(5, dtype=second)[np.arange(20) % 5]

    def calls(backend: Any) -> list[np.ndarray]:
        backend.restart(12345, 0)
        outputs = [np.empty_like(z) for _ in range(4)]
        out_y, out_mask, dz, gradient = outputs
        backend.dense_forward(z.copy(), bias, out_y, activation="tanh", dropout=(0.3, 2.0),
                              mask=out_mask)
        db = np.empty(5, first)
        backend.dense_backward(y, gy, dz, db, activation="sigmoid", mask=mask)
        losses, hits, bias_grad = np.empty(20), np.empty(20, bool), np.empty(5, first)
        backend.dense_softmax_cross_entropy(z.copy(), bias, a, 0.5, gradient, losses, hits,
                                            bias_grad)
        return [*outputs, db, losses, hits, bias_grad]

    for got, expected in zip(*both(kernels, cpu, calls)):
        check(got, expected, precision=np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", TARGET_DTYPES)
def test_softmax_cross_entropy_of_any_target_dtype(kernels, cpu, target, dtype):
    """Targets of any real or bool dtype, taken in the logits' dtype."""
    rng = np.random.default_rng(5)
    z = rng.uniform(-20, 20, (50, 10)).astype(dtype)
    a = np.eye(10)[rng.integers(0, 10, 50)].astype(target)
    losses, gradient = kernels.softmax_cross_entropy(z, a, 0.5)
    check(losses, expect(cpu, "softmax_cross_entropy", z, a, 0.5)[0])
    check(gradient, expect(cpu, "softmax_cross_entropy", z, a, 0.5)[1])
    assert losses.dtype == gradient.dtype == dtype


@pytest.mark.parametrize("logits", [np.int64, np.bool_])
def test_softmax_cross_entropy_refuses_integer_logits(kernels, cpu, logits):
    z = np.zeros((2, 3), logits)
    for backend in (kernels, cpu):
        with pytest.raises(TypeError, match=f"float32 or float64 logits, got {np.dtype(logits)}"):
            backend.softmax_cross_entropy(z, np.zeros((2, 3)), 1.0)


@pytest.mark.parametrize("predicted", [np.float32, np.int64, np.bool_])
@pytest.mark.parametrize("target", TARGET_DTYPES)
def test_matches_of_any_dtypes(kernels, cpu, predicted, target):
    rng = np.random.default_rng(6)
    p, t = rng.integers(0, 3, (200, 4)).astype(predicted), rng.integers(0, 3, (200, 4)).astype(target)
    check(kernels.matches(p, t), expect(cpu, "matches", p, t))


@pytest.mark.parametrize("param_dtype, grad_dtype", MIXED_FLOATS)
@pytest.mark.parametrize("op", ["sgd_update", "momentum_update"])
def test_update_with_a_gradient_of_another_dtype(kernels, cpu, op, param_dtype, grad_dtype):
    """The parameter keeps its dtype, the gradient taken in it (float32 precision:
    NumPy rounds lr * g to float32 where the kernel does not)."""
    n_state, hyper = (1, (0.1,)) if op == "sgd_update" else (2, (0.1, 0.9))
    state = [draw(100, param_dtype, seed=seed) for seed in (5, 6)][:n_state]
    grad = draw(100, grad_dtype, seed=7)
    on_host, on_cpu = [x.copy() for x in state], [x.copy() for x in state]
    getattr(kernels, op)(*on_host, grad, *hyper)
    getattr(cpu, op)(*on_cpu, grad, *hyper)
    for got, expected in zip(on_host, on_cpu):
        check(got, expected, precision=np.float32)


# A graph step (gpunet/planning/graph.py): its per-step values read from the state.
@covers(*(dense_kernel("forward", activation, True, from_state=True)
          for activation in ACTIVATIONS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_forward_from_state(kernels, cpu, activation, dtype):
    """The draws take the state's key from counter state[COUNTER] + skip, the
    mask bit for bit the one drawn eagerly from there, and the backend's own
    counters stay as they were."""
    z = draw((7, 3), dtype, seed=8, extremes=EXTREMES)
    bias = draw(3, dtype, -1.0, 1.0, seed=9)
    state = graph_state(5, 678, 12345)

    def forward(backend: Any, from_state: bool) -> tuple[np.ndarray, np.ndarray, int]:
        backend.restart(12345, 0 if from_state else 678 + 40)
        y, mask = np.empty_like(z), np.empty_like(z)
        backend.dense_forward(z.copy(), bias, y, activation=activation, dropout=(0.3, 2.0),
                              mask=mask, state=(state, 40) if from_state else None)
        return y, mask, backend.drawn

    with np.errstate(all="ignore"):
        (y, mask, drawn), (cpu_y, cpu_mask, cpu_drawn) = (forward(b, True) for b in (kernels, cpu))
        _, eager_mask, _ = forward(cpu, False)
    assert drawn == cpu_drawn == 0
    np.testing.assert_array_equal(mask, cpu_mask)
    np.testing.assert_array_equal(mask, eager_mask)
    check(y, cpu_y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation, dropout, from_state", [
    (activation, dropout, from_state) for activation, dropout in DENSE_VARIANTS
    for from_state in (False, True)[:1 + dropout]])
def test_a_recorded_steps_dense_forward_is_the_eager_one_bit_for_bit(kernels, activation, dropout,
                                                                     from_state, dtype):
    """Recorded, dense_forward runs its row as a grid kernel (block_kernels/grid.py):
    over a (7, 3) z, its bias a row's, the same y and mask as CuPy's kernel of
    that row; z itself may be y."""
    z = draw((7, 3), dtype, seed=8, extremes=EXTREMES)
    bias = draw(3, dtype, -1.0, 1.0, seed=9)
    results = []
    for recorded in (None, "cuBLAS"):
        kernels.restart(12345, 678)
        y, mask = z.copy(), np.empty_like(z) if dropout else None
        with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
            patch.setattr(kernels, "captured_gemm", recorded, raising=False)
            kernels.dense_forward(y, bias, y, activation=activation,
                                  dropout=(0.3, 2.0) if dropout else None, mask=mask,
                                  state=(graph_state(5, 678, 12345), 40) if from_state else None)
        results.append((y, mask, kernels.drawn))
    for eager, recorded in zip(*results, strict=True):
        np.testing.assert_array_equal(eager, recorded)


@contextlib.contextmanager
def recording(kernels: Any, way: str, cublas: Any) -> Any:
    """Inside, ``kernels`` makes its operations as a recorded step does: its
    products tiled where ``_tiled`` says, or, ``way`` "cuBLAS", each by ``cublas``."""
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        if way == "cuBLAS":  # else _tiled's own choice for these short sums: tiled
            patch_cupy(patch, "_tiled", lambda *product: False)
        patch_cupy(patch, "captured_cublas", lambda: cublas)
        yield


@contextlib.contextmanager
def capturing(kernels: Any, side: Branches | None) -> Any:
    """Inside, ``kernels`` makes its operations as a recorded step does (tiled
    where ``_tiled`` says) and, given branches ``side``, as a capture does,
    forking work aside onto them; LAUNCHED starts empty."""
    del LAUNCHED[:]
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        patch.setattr(kernels, "side", side, raising=False)
        patch.setattr(sys.modules[type(kernels).__module__].cupy, "cuda",
                      SimpleNamespace(get_current_stream=lambda: None), raising=False)
        yield


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [False, True], ids=["plain", "rows"])
@pytest.mark.parametrize("row", FUSED_ROWS)
def test_a_recorded_steps_product_and_forward_fused_are_them_apart_bit_for_bit(kernels, row,
                                                                              rows, dtype):
    """Recorded, gemm_dense_forward of a tiled product is one GEMM kernel with
    the stage's forward row as its epilogue: the same y (in z) and mask as the
    tiled product, then dense_forward; cuBLAS's products it leaves apart."""
    activation = next(a for a in (None, *FORMULAS) if row in (
        dense_kernel("forward", a, False), dense_kernel("forward", a, True, from_state=True)))
    dropout = row.endswith("_from_state")
    h_data, w = draw((40, 12), dtype, seed=50), draw((5, 12), dtype, seed=51)
    bias, state = draw(5, dtype, -1.0, 1.0, seed=52), graph_state(3, 678, 12345)
    h = StateRows(h_data, state, 9, np.empty((9, 12), dtype)) if rows else h_data[3:12]
    forward = dict(activation=activation, dropout=(0.3, 2.0) if dropout else None,
                   state=(state, 40) if dropout else None)
    results = []
    for way in ("fused", "apart", "cuBLAS"):
        z = np.full((9, 5), np.nan, dtype)
        mask = np.full((9, 5), np.nan, dtype) if dropout else None
        cublas = NumpyCublas()
        with recording(kernels, way, cublas):
            if way == "apart":
                kernels.gemm(h, w, out=z, trans_b=True)
                out = kernels.dense_forward(z, bias, z, mask=mask, **forward)
            else:
                out = kernels.gemm_dense_forward(h, w, z, bias, mask=mask, **forward)
        assert out is z and len(cublas.operands) == (way == "cuBLAS")
        results.append((z, mask))
    for fused, apart in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(fused, apart)
    check(results[2][0], results[0][0])  # by cuBLAS, the product's sums may round apart
    if dropout:  # the draws may not
        np.testing.assert_array_equal(results[2][1], results[0][1])


def test_an_eager_product_and_forward_are_gemm_then_dense_forward_with_its_window(kernels):
    """Not recorded (a rank's planned step), gemm_dense_forward is the product
    (cupy.matmul), then dense_forward with the rank's DrawWindow: the same y,
    mask and counters as those two called apart."""
    module = sys.modules[type(kernels).__module__]
    h, w = draw((6, 4), np.float32, seed=60), draw((3, 4), np.float32, seed=61)
    bias, window = draw(3, np.float32, seed=62), DrawWindow(rows=10, start=4)
    results = []
    for fused in (True, False):
        kernels.restart(99, 5)
        z, mask = np.empty((6, 3), np.float32), np.empty((6, 3), np.float32)
        forward = dict(activation="tanh", dropout=(0.3, 2.0), mask=mask, window=window)
        with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
            patch.setattr(module.cupy, "matmul", np.matmul, raising=False)
            if fused:
                kernels.gemm_dense_forward(h, w, z, bias, **forward)
            else:
                kernels.gemm(h, w, out=z, trans_b=True)
                kernels.dense_forward(z, bias, z, **forward)
        results.append((z, mask, kernels.drawn))
    assert results[0][2] == results[1][2] == 5 + 10 * 3
    for fused, apart in zip(*results, strict=True):
        np.testing.assert_array_equal(fused, apart)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation, dropout", DENSE_VARIANTS)
def test_a_recorded_steps_product_and_backward_fused_are_them_apart_bit_for_bit(
        kernels, activation, dropout, dtype):
    """Recorded, gemm_dense_backward of a tiled product is one GEMM kernel with
    the stage's backward row as its epilogue (a plain GEMM with neither
    activation nor dropout), then the column sums of dz alone: the same gy, dz
    and db as the tiled product, then dense_backward; cuBLAS's products it
    leaves apart."""
    g, w = draw((9, 12), dtype, -1.0, 1.0, seed=70), draw((12, 5), dtype, -1.0, 1.0, seed=71)
    y = draw((9, 5), dtype, -1.0, 1.0, seed=72) if activation else None
    mask = (draw((9, 5), dtype, 0.0, 1.0, seed=73) >= 0.3) * dtype(1 / 0.7) if dropout else None
    results = []
    for way in ("fused", "apart", "cuBLAS"):
        gy, dz, db = (np.full(shape, np.nan, dtype) for shape in ((9, 5), (9, 5), 5))
        cublas = NumpyCublas()
        del LAUNCHED[:]
        with recording(kernels, way, cublas):
            if way == "apart":
                kernels.gemm(g, w, out=gy)
                out = kernels.dense_backward(y, gy, dz, db, activation=activation, mask=mask)
            else:
                out = kernels.gemm_dense_backward(g, w, gy, y, dz, db, activation=activation,
                                                  mask=mask)
        assert out is (dz if activation or dropout else gy)
        assert len(cublas.operands) == (way == "cuBLAS")
        if way == "fused":
            row = dense_kernel("backward", activation, dropout)
            assert LAUNCHED == [f"gemm_{row}" if activation or dropout else "gemm",
                                "dense_backward_identity"]
        results.append((gy, out, db))
    for fused, apart in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(fused, apart)
    check(results[2][0], results[0][0])  # by cuBLAS, the product's sums may round apart


def test_a_recorded_backwards_column_sums_fork_aside_while_capturing(kernels):
    """Capturing (``side`` set), gemm_dense_backward's column sums, which only
    the update reads, run forked onto the sums' side stream; its product, which
    the next product reads, stays on the capture's."""
    g, w, y = (draw(shape, np.float32, seed=seed)
               for shape, seed in (((6, 4), 74), ((4, 3), 75), ((6, 3), 76)))
    side, log = logged_branches()
    with capturing(kernels, side):
        kernels.gemm_dense_backward(g, w, np.empty((6, 3), np.float32), y,
                                    np.empty((6, 3), np.float32), np.empty(3, np.float32),
                                    activation="tanh")
    assert LAUNCHED == ["gemm_dense_backward_tanh", "dense_backward_identity"]
    assert log == [("fork", "sums"), ("back", "sums", ["dense_backward_identity"])]


def test_an_eager_product_and_backward_are_gemm_then_dense_backward(kernels):
    """Not recorded (a rank's planned step), gemm_dense_backward is the product
    (cupy.matmul), then dense_backward: the same gy, dz and db as the two apart."""
    module = sys.modules[type(kernels).__module__]
    g, w = draw((6, 4), np.float32, seed=77), draw((4, 3), np.float32, seed=78)
    y = draw((6, 3), np.float32, -1.0, 1.0, seed=79)
    mask = (draw((6, 3), np.float32, 0.0, 1.0, seed=80) >= 0.3) * np.float32(2.0)
    results = []
    for fused in (True, False):
        gy, dz, db = np.empty((6, 3), np.float32), np.empty((6, 3), np.float32), np.empty(
            3, np.float32)
        with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
            patch.setattr(module.cupy, "matmul", np.matmul, raising=False)
            if fused:
                kernels.gemm_dense_backward(g, w, gy, y, dz, db, activation="tanh", mask=mask)
            else:
                kernels.gemm(g, w, out=gy)
                kernels.dense_backward(y, gy, dz, db, activation="tanh", mask=mask)
        results.append((gy, dz, db))
    for fused, apart in zip(*results, strict=True):
        np.testing.assert_array_equal(fused, apart)


def fused_or_apart_output(kernels: Any, way: str, h: np.ndarray, w: np.ndarray, targets: Any,
                          state: np.ndarray | None, side: Branches | None = None
                          ) -> tuple[tuple[np.ndarray, ...], list[str]]:
    """A recorded step's last product and output stage, ``way``: "fused"
    (gemm_dense_softmax_cross_entropy) or "apart" (gemm, then
    dense_softmax_cross_entropy), captured with branches ``side`` or not;
    (z, gradient, losses, hits, db), the launches."""
    rows, k, dtype = len(h), len(w), h.dtype
    z, gradient = np.full((rows, k), np.nan, dtype), np.full((rows, k), np.nan, dtype)
    losses, hits = np.full(len(targets), np.nan), np.zeros(len(targets), bool)
    bias, db = draw(k, dtype, -1.0, 1.0, seed=83), np.full(k, np.nan, dtype)
    output = (bias, targets, 0.25, gradient, losses, hits, db, state)
    with capturing(kernels, side):
        if way == "apart":
            kernels.gemm(h, w, out=z, trans_b=True)
            kernels.dense_softmax_cross_entropy(z, *output)
        else:
            kernels.gemm_dense_softmax_cross_entropy(h, w, z, *output)
    return (z, gradient, losses, hits, db), list(LAUNCHED)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_state", [False, True], ids=["batch", "state"])
@pytest.mark.parametrize("depth, classes, count", [(3, 7, 1), (10, 7, 2), (20, 7, 4), (60, 2, 8),
                                                   (100, 2, 16)])
def test_a_recorded_steps_last_product_and_output_stage_fused_are_them_apart_bit_for_bit(
        kernels, depth, classes, count, from_state, dtype):
    """Recorded, gemm_dense_softmax_cross_entropy of a short tiled product (1 to
    16 slices, some idle) is the output stage's kernel computing each row's
    logits in the tiled GEMM's order: the same z, gradient, losses, hits and db
    as the two apart; with a graph step's state, at its rows of the epoch's."""
    assert slices(depth) == count
    h = draw((9, depth), dtype, -1.0, 1.0, seed=81)
    w = draw((classes, depth), dtype, -1.0, 1.0, seed=82)
    targets = np.eye(classes, dtype=dtype)[np.arange(20) % classes]
    state = graph_state(5, 0, 0) if from_state else None
    targets = targets if from_state else targets[:9]
    fused, launched = fused_or_apart_output(kernels, "fused", h, w, targets, state)
    apart, _ = fused_or_apart_output(kernels, "apart", h, w, targets, state)
    assert launched == ["gemm_dense_softmax_cross_entropy" + ("_from_state" if from_state else "")]
    for got, expected in zip(fused, apart, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("way", ["fused", "apart"])
@pytest.mark.parametrize("from_state", [False, True], ids=["batch", "state"])
def test_a_captured_output_stages_column_sums_fork_aside_giving_the_same_bits(kernels, way,
                                                                              from_state):
    """Capturing (``side`` set), the output stage leaves its bias gradient's
    column sums, which only the update reads, to dense_backward's kernel forked
    onto the sums' branch: the same z, gradient, losses, hits and db as the
    output stage's one kernel summing them, not capturing."""
    h = draw((9, 10), np.float32, -1.0, 1.0, seed=86)
    w = draw((7, 10), np.float32, -1.0, 1.0, seed=87)
    targets = np.eye(7, dtype=np.float32)[np.arange(20) % 7]
    state = graph_state(5, 0, 0) if from_state else None
    targets = targets if from_state else targets[:9]
    side, log = logged_branches()
    captured, launched = fused_or_apart_output(kernels, way, h, w, targets, state, side)
    alone, _ = fused_or_apart_output(kernels, way, h, w, targets, state)
    stage = ("gemm_" if way == "fused" else "") + "dense_softmax_cross_entropy" + (
        "_from_state" if from_state else "")
    assert launched == [*(["gemm"] if way == "apart" else []), stage, "dense_backward_identity"]
    assert log == [("fork", "sums"), ("back", "sums", ["dense_backward_identity"])]
    for got, expected in zip(captured, alone, strict=True):
        np.testing.assert_array_equal(got, expected)


def passes(kernels: Any, way: str, chain: str, dtype: Any, side: Branches | None = None
           ) -> tuple[dict[str, np.ndarray], list[str]]:
    """What a recorded step's ``dense_passes`` of CHAINS[chain] writes, ``way``
    "chained" (the backend's) or "apart" (the base class's: its parts, each fused
    as the backend fuses it), captured with branches ``side`` or not; the launches."""
    from gpunet.backend.planned_step import PlannedStepOperations
    (x, forwards, output, backwards, state), written = passes_arguments(*CHAINS[chain], dtype)
    passes = kernels.dense_passes if way == "chained" else functools.partial(
        PlannedStepOperations.dense_passes, kernels)
    with capturing(kernels, side):
        dz = passes(x, forwards, output, backwards, state)
    first = backwards[-1]
    assert dz is (first[2] if first[3] is None else first[3])
    return written, list(LAUNCHED)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chain", CHAINS)
def test_a_recorded_steps_stages_past_the_first_row_by_row_are_them_apart_bit_for_bit(
        kernels, chain, dtype):
    """Recorded, ``dense_passes`` runs the first stage's fused product, then the
    row chain (every later forward, the loss, every backward, in the tiled
    GEMM's order of each product), then the column sums: every output, mask,
    logit, loss, hit, gradient, gy, dz and bias gradient those kernels give
    apart, bit for bit, in rows over more than one block (37)."""
    stages, _, _ = CHAINS[chain]
    chained, launched = passes(kernels, "chained", chain, dtype)
    apart, _ = passes(kernels, "apart", chain, dtype)
    assert launched[1:] == [block_kernels.chain_name(stages)] + ["dense_backward_identity"] * (
        len(stages) + 1)
    for name, expected in apart.items():
        np.testing.assert_array_equal(chained[name], expected, err_msg=name)
    assert not np.isnan(chained["dz1" if "dz1" in chained else "gy1"]).any()


def test_a_captured_row_chains_column_sums_fork_aside(kernels):
    """Capturing, the row chain's column sums (the output stage's, then each
    hidden stage's, last first) go onto the sums' branch, which only the
    update reads."""
    side, log = logged_branches()
    _, launched = passes(kernels, "chained", "deep", np.float32, side)
    assert log == [("fork", "sums"), ("back", "sums", ["dense_backward_identity"] * 3)]
    assert launched[:2] == ["gemm_dense_forward_tanh_dropout_from_state",
                            "dense_rows_tanh_dropout__tanh_dropout"]


def recorded_deep_step(kernels: Any, cpu: gpunet.Backend, chained: bool, way: str = "bound",
                       side: Branches | None = None) -> tuple[list[str], list[np.ndarray], Any]:
    """The deep model's graph step at batch 16, warmed up on NumPy, then
    recorded once on ``kernels`` (the row chain, or with ``chained`` False its
    parts) ``way``: "bound" (as ``bind`` records it), "eager" (as ``run_step``
    does, before a capture) or "captured" (as ``capture`` does, with branches
    ``side``): the launches, the parameters, velocity, losses and hits after,
    and the StepGraph."""
    from gpunet.bench.trainers import mnist_like
    from gpunet.planning.graph import StepGraph
    from gpunet.planning.step import plan_step
    from helpers.models import model_of
    gpunet.seed(0)
    model = model_of("deep", cpu)
    gpunet.set_train(model, True)
    optimizer = gpunet.Momentum(0.5, 0.9)
    plan = plan_step(model, gpunet.SoftmaxCrossEntropy(), optimizer, cpu, 16)
    graph = StepGraph(plan, ("stand-in",))
    x, labels = mnist_like(48)  # a warm-up step, the recorded one, and the rows after
    graph.start_epoch(x, gpunet.one_hot_encode(labels, backend=cpu).astype(np.float32), None)
    graph.step(slice(0, 16))  # the warm-up through the plan makes the optimizer's state
    graph._write(plan.rates(), cpu.drawn, cpu.key)  # the rates, as the next step puts them
    module = sys.modules[type(kernels).__module__]
    del LAUNCHED[:]
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(plan, "backend", kernels)
        patch.setattr(graph, "backend", kernels)
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        patch_cupy(patch, "captured_cublas", lambda: NumpyCublas())
        patch.setattr(kernels, "side", side if way == "captured" else None, raising=False)
        patch.setattr(kernels, "bound", [] if way == "bound" else None, raising=False)
        patch.setattr(module.cupy, "cuda", SimpleNamespace(get_current_stream=lambda: None),
                      raising=False)
        if not chained:
            patch.setattr(module.CupyBackend, "_row_chain", lambda *args: False)
        graph.record()
    return (list(LAUNCHED), [plan.flat.pair[0], *optimizer.state(), graph.losses, graph.hits],
            graph)


def test_a_recorded_deep_step_is_9_kernels_with_its_parts_numbers(kernels, cpu):
    """A StepPlan's recorded deep step on CupyBackend: the first stage's fused
    product, the row chain, 3 column sums, 3 weight gradients, the update (9
    kernels, where its parts are 11); the parameters, velocity, losses and hits
    of its parts, bit for bit."""
    launched, chained, _ = recorded_deep_step(kernels, cpu, True)
    parts, apart, _ = recorded_deep_step(kernels, cpu, False)
    assert launched == ["gemm_dense_forward_tanh_dropout_from_state",
                        "dense_rows_tanh_dropout__tanh_dropout", *["dense_backward_identity"] * 3,
                        "gemm", "gemm", "gemm", "grid_momentum_update_and_advance"]
    assert len(parts) == 11
    for got, expected in zip(chained, apart, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("chained", [True, False], ids=["row chain", "parts"])
def test_a_recorded_deep_step_reads_the_next_rows_ahead_unless_bound(kernels, cpu,
                                                                     block_launch, chained):
    """A recorded deep step asks L2 for the lines of the next step's rows of the
    epoch's inputs and targets, by one kernel after its loss: captured, forked
    onto the ahead branch and joined before the update (10 kernels with the row
    chain, 13 with its parts); run eagerly, on the current stream (so a capture
    after finds it built). Bound, it asks for nothing. The numbers are the same,
    bit for bit."""
    bound_launched, bound, graph = recorded_deep_step(kernels, cpu, chained)
    assert "read_ahead" not in bound_launched and prefetched(block_launch) == []
    eager_launched, eager, graph = recorded_deep_step(kernels, cpu, chained, "eager")
    assert [name for name in eager_launched if name != "read_ahead"] == bound_launched
    assert eager_launched.count("read_ahead") == 1
    assert sorted(prefetched(block_launch)) == sorted(
        line for data in (graph.x, graph.y) for line in lines_of(data[32:48]))
    side, log = logged_branches()
    launched, captured, graph = recorded_deep_step(kernels, cpu, chained, "captured", side)
    loss = next(i for i, name in enumerate(launched) if name.startswith("dense_rows")
                or "softmax" in name)
    # after the loss: the row chain's, or the output stage's and its column sums (forked aside)
    assert launched.count("read_ahead") == 1
    assert launched.index("read_ahead") == loss + (1 if chained else 2)
    assert len(launched) == (10 if chained else 13)
    assert [entry for entry in log if entry[1] == "ahead"] == [
        ("fork", "ahead"), ("back", "ahead", ["read_ahead"]), ("join", "ahead")]
    assert log.index(("join", "ahead")) > log.index(("back", "ahead", ["read_ahead"]))
    assert sorted(prefetched(block_launch)) == sorted(
        line for data in (graph.x, graph.y) for line in lines_of(data[32:48]))
    for numbers in (eager, captured):
        for got, expected in zip(numbers, bound, strict=True):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("given", ["as a step gives them", "no graph step's rows",
                                   "targets of another dtype", "targets of one dimension",
                                   "targets of other rows", "targets not contiguous"])
def test_read_ahead_asks_for_nothing_it_would_read_wrong(kernels, block_launch, given):
    """Capturing, read_ahead takes a graph step's rows and the epoch's targets as a
    step gives them (C-contiguous, two dimensions, the rows' dtype and number);
    given anything else, a hint it cannot give right, it launches nothing."""
    data, targets = np.zeros((40, 12), np.float32), np.zeros((40, 3), np.float32)
    x = StateRows(data, graph_state(0, 0, 0), 8, np.empty((8, 12), np.float32))
    x, targets = {"no graph step's rows": (data[:8], targets),
                  "targets of another dtype": (x, targets.astype(np.float64)),
                  "targets of one dimension": (x, targets[:, 0].copy()),
                  "targets of other rows": (x, targets[:39]),
                  "targets not contiguous": (x, np.zeros((40, 6), np.float32)[:, ::2]),
                  }.get(given, (x, targets))
    side, log = logged_branches()
    with capturing(kernels, side):
        kernels.read_ahead(x, targets)
    asked = given == "as a step gives them"
    assert LAUNCHED == ["read_ahead"] * asked
    assert log == [("fork", "ahead"), ("back", "ahead", ["read_ahead"])] * asked
    assert sorted(prefetched(block_launch)) == (
        sorted(lines_of(data[8:16]) + lines_of(targets[8:16])) if asked else [])


def lines_of(rows: np.ndarray) -> list[int]:
    """The addresses of the L2 lines holding C-contiguous ``rows``, each as
    read_ahead asks for it: its first byte's, then a line on."""
    from gpunet.backend.block_kernels.ahead import LINE
    start = rows.ctypes.data
    return list(range(start // LINE * LINE, start + rows.nbytes, LINE))


@pytest.mark.parametrize("why", ["too wide", "too many stages", "not recorded", "no state",
                                 "cuBLAS's product"])
def test_dense_passes_takes_its_parts_beyond_the_row_chain(kernels, why):
    """Stages wider than ROW_WIDTH or more than ROW_STAGES of them, a step not
    recorded or without a graph step's state, or a product cuBLAS would take:
    the parts, not the chain."""
    module = sys.modules[type(kernels).__module__]
    stages, widths, k = CHAINS["one hidden stage"]
    if why == "too wide":
        widths = (block_kernels.ROW_WIDTH + 1,)
    elif why == "too many stages":
        stages, widths = stages * (block_kernels.ROW_STAGES + 1), widths * (
            block_kernels.ROW_STAGES + 1)
    (x, forwards, output, backwards, state), _ = passes_arguments(stages, widths, k, np.float32)
    if why == "no state":  # the batch's targets, losses and hits
        w, z, bias, targets, scale, g, losses, hits, db = output
        output = (w, z, bias, targets[5:42], scale, g, losses[5:42], hits[5:42], db)
    del LAUNCHED[:]
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(kernels, "captured_gemm", None if why == "not recorded" else "cuBLAS",
                      raising=False)
        patch.setattr(module.cupy, "matmul", np.matmul, raising=False)
        if why == "cuBLAS's product":
            patch_cupy(patch, "_tiled", lambda *args: False)
            patch_cupy(patch, "captured_cublas", lambda: NumpyCublas())
        kernels.dense_passes(x, forwards, output, backwards, None if why == "no state" else state)
    assert not any(name.startswith("dense_rows") for name in LAUNCHED), LAUNCHED


@pytest.mark.parametrize("h_shape, w_shape", [((9, 26), (10, 26)), ((9, 2), (33, 2))],
                         ids=["too many terms", "too many logits"])
def test_a_recorded_output_stage_takes_its_product_apart_beyond_its_bounds(kernels, h_shape,
                                                                            w_shape):
    """A row's logits of more than FUSED_OUTPUT_TERMS terms, or more than
    MAX_LOGITS of them, are the tiled product, then the output stage."""
    h, w = draw(h_shape, np.float32, seed=84), draw(w_shape, np.float32, seed=85)
    targets = np.eye(len(w), dtype=np.float32)[np.arange(9) % len(w)]
    fused, launched = fused_or_apart_output(kernels, "fused", h, w, targets, None)
    apart, _ = fused_or_apart_output(kernels, "apart", h, w, targets, None)
    assert launched == ["gemm", "dense_softmax_cross_entropy"]
    for got, expected in zip(fused, apart, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rows", [False, True], ids=["plain", "rows"])
def test_a_recorded_forward_product_of_300_terms_is_fused_only_reading_the_rows(kernels, rows):
    """A sum of 300 terms takes the tiled kernel, and so its forward, only
    reading the batch's rows (TILED_ROWS_SUM); plain, it is cuBLAS's."""
    data, w, bias = (draw(shape, np.float32, seed=seed)
                     for shape, seed in (((12, 300), 63), ((5, 300), 64), (5, 65)))
    state = graph_state(2, 0, 0)
    h = StateRows(data, state, 8, np.empty((8, 300), np.float32)) if rows else data[2:10]
    cublas, z = NumpyCublas(), np.empty((8, 5), np.float32)
    del LAUNCHED[:]
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        patch_cupy(patch, "captured_cublas", lambda: cublas)
        kernels.gemm_dense_forward(h, w, z, bias, activation="tanh")
    assert len(cublas.operands) == (not rows)
    assert LAUNCHED == (["gemm_dense_forward_tanh"] if rows else ["grid_dense_forward_tanh"])
    check(z, np.tanh(data[2:10] @ w.T + bias))


@pytest.mark.parametrize("with_cublas", [True, False], ids=["a cuBLAS product", "no cuBLAS"])
def test_a_bound_step_replays_its_launches_on_the_arrays_it_bound(kernels, with_cublas):
    """``bind`` runs a step as ``run_step`` does, binding each launch and
    libcublas call once (a tiled product with its forward, a cuBLAS product, a
    grid kernel, a block kernel, the update); its replay makes them again, in
    order, on the current stream and the arrays as they are then: the numbers
    ``run_step`` gives, with no Python per kernel; the cuBLAS handle readied
    for the stream only where there is a libcublas call."""
    module = sys.modules[type(kernels).__module__]
    x, w, tall = (draw(shape, np.float32, seed=seed)
                  for shape, seed in (((5, 4), 30), ((3, 4), 31), ((300, 4), 32)))
    z, square = np.empty((5, 3), np.float32), draw((4, 4), np.float32, seed=35)
    bias, db, param = draw(3, np.float32, seed=33), np.empty(3, np.float32), draw(16, np.float32,
                                                                                 seed=34)
    state, rates, delta = graph_state(0, 0, 0), np.array([0.5], np.float32), graph_state(1, 2, 3)

    def step() -> None:
        kernels.gemm_dense_forward(x, w, z, bias, activation="tanh")  # a short sum: tiled
        if with_cublas:
            kernels.gemm(tall, tall, square, trans_a=True)  # 300 terms: cuBLAS
        kernels.dense_forward(z, bias, z, activation="relu")
        kernels.dense_backward(z, z, z, db, activation="tanh")
        kernels.update_and_advance(param, square.reshape(16), None, rates, None, state, delta)

    cublas, prepared = NumpyCublas(), []
    with pytest.MonkeyPatch.context() as patch:
        patch_cupy(patch, "captured_cublas", lambda: cublas)
        patch.setattr(cublas, "prepare", prepared.append, raising=False)
        current = SimpleNamespace(ptr=7)
        patch.setattr(module.cupy, "cuda", SimpleNamespace(get_current_stream=lambda: current),
                      raising=False)
        replay = kernels.bind(step)
        assert kernels.bound is None and kernels.captured_gemm is None
        assert len(cublas.operands) == with_cublas and list(state) == [1, 2, 3]
        x += 1.0
        tall *= 2.0
        before = (param.copy(), state.copy())
        del STREAMS[:]
        replay()
        replayed = (param.copy(), state.copy(), z.copy(), db.copy())
        assert STREAMS == [7] * 4  # each kernel launch bound, on the current stream
        param[...], state[...] = before
        kernels.run_step(step)
    assert len(cublas.operands) == 2 * with_cublas
    assert prepared == [current] * (2 + with_cublas)  # bind's and run_step's; the replay's
    assert list(replayed[1]) == [2, 4, 6]
    for got, expected in zip(replayed, (param, state, z, db), strict=True):
        np.testing.assert_array_equal(got, expected)


class LoggedSide:
    """A SideStream that logs, by its ``name``, its forks and joins and the
    launches made inside a fork."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    @contextlib.contextmanager
    def fork(self, main: Any) -> Any:
        start = len(LAUNCHED)
        self.log.append(("fork", self.name))
        yield
        self.log.append(("back", self.name, LAUNCHED[start:]))

    def join(self, main: Any) -> None:
        self.log.append(("join", self.name))


def logged_branches() -> tuple[Branches, list]:
    log: list = []
    return Branches(*(LoggedSide(name, log) for name in Branches._fields)), log


def test_a_captured_product_aside_forks_onto_the_side_stream_until_the_update(kernels):
    """Capturing (``side`` set), a tiled product marked aside runs forked onto the
    products' side stream, a cuBLAS one on the capture's (the handle's), and the
    update joins both branches first; not capturing, aside changes nothing."""
    module = sys.modules[type(kernels).__module__]
    a, b, long_a = (draw(shape, np.float32, seed=seed)
                    for shape, seed in (((5, 4), 40), ((4, 3), 41), ((300, 5), 42)))
    param, state = np.zeros(3, np.float32), graph_state(0, 0, 0)
    branches, logged = logged_branches()
    for side in (branches, None):
        cublas = NumpyCublas()
        del LAUNCHED[:]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
            patch.setattr(kernels, "side", side, raising=False)
            patch_cupy(patch, "captured_cublas", lambda: cublas)
            patch.setattr(module.cupy, "cuda", SimpleNamespace(get_current_stream=lambda: None),
                          raising=False)
            short = kernels.gemm(a, b, np.empty((5, 3), np.float32), aside=True)
            log = list(logged)
            long = kernels.gemm(long_a, long_a, np.empty((5, 5), np.float32), trans_a=True,
                                aside=True)
            assert logged == log  # cuBLAS's: not forked
            kernels.update_and_advance(param, np.ones(3, np.float32), None,
                                       np.ones(1, np.float32), None, state, graph_state(1, 1, 1))
        check_product(short, a, b)
        check_product(long, long_a.T, long_a)
        assert len(cublas.operands) == 1
    assert logged == [("fork", "products"), ("back", "products", ["gemm"]),
                      ("join", "products"), ("join", "sums"), ("join", "ahead")]


@covers("sgd_update_and_advance", "momentum_update_and_advance")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [False, True])
def test_update_and_advance(kernels, cpu, momentum, dtype):
    """The update with its rates read from the device, as the host's update
    computes it, then the state moved on by delta (once, whatever the size)."""
    param, velocity, grad = (draw(100, dtype, seed=seed) for seed in (5, 6, 7))
    rates = np.array([0.1, 0.9, 1 - 0.9], dtype)
    delta = graph_state(3, 40, 5)  # a key's step too: every entry advances
    results = []
    for backend in (kernels, cpu):
        p, v, state = param.copy(), velocity.copy(), graph_state(4, 99, 7)
        backend.update_and_advance(p, grad, v if momentum else None, rates, np.empty_like(p),
                                   state, delta)
        np.testing.assert_array_equal(state, [7, 139, 12])
        results.append((p, v))
    expected_p, expected_v = param.copy(), velocity.copy()
    if momentum:
        cpu.momentum_update(expected_p, expected_v, grad, 0.1, 0.9)
    else:
        cpu.sgd_update(expected_p, grad, 0.1)
    np.testing.assert_array_equal(results[1][0], expected_p)  # NumPy's: the host's bit for bit
    np.testing.assert_array_equal(results[1][1], expected_v)
    check(results[0][0], expected_p, precision=np.float32)
    check(results[0][1], expected_v, precision=np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 5, 3), (16, 30, 10)])
def test_fallback_gemm(kernels, cpu, shape, trans_a, trans_b, dtype):
    """The GEMM kernel a capture falls back on, on the transposed views a planned
    step passes: within the rounding a sum of k products may have."""
    m, k, n = shape
    a = draw((k, m) if trans_a else (m, k), dtype, seed=16)
    b = draw((n, k) if trans_b else (k, n), dtype, seed=17)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "captured_gemm", "fallback GEMM", raising=False)
        out = np.full((m, n), np.nan, dtype)
        assert kernels.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b) is out
    check_product(out, (a.T if trans_a else a), (b.T if trans_b else b))


def check_product(out: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``out`` is a b within the rounding a sum of k products in out's dtype may have."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    bound = a.shape[1] * np.finfo(out.dtype).eps * (np.abs(a) @ np.abs(b))
    assert out.shape == (a.shape[0], b.shape[1]) and (np.abs(out - a @ b) <= bound).all()


class NumpyCublas:
    """``captured_cublas()`` as NumPy: each product into its ``out``, each call noted."""

    def __init__(self) -> None:
        self.operands: list[tuple[np.ndarray, np.ndarray]] = []

    def gemm(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, bound: list | None = None
             ) -> None:
        self.operands.append((a, b))
        if bound is not None:  # bound: the same product again, whatever the stream
            from gpunet.backend.cublas_capture import BoundGemm  # imports CuPy, as kernels does

            bound.append(BoundGemm(lambda: np.matmul(a, b, out=out) is None, ()))
        np.matmul(a, b, out=out)


@covers("state_rows")
@pytest.mark.parametrize("route", ["fallback GEMM", "cuBLAS, tiled", "cuBLAS"])
@pytest.mark.parametrize("which", ["a", "b"])
def test_a_captured_product_reads_a_graph_steps_batch_at_its_offset(kernels, cpu, which, route):
    """A StateRows operand (the first layer's x W^T and dz^T x) is read from row
    state[OFFSET] of the epoch's data: in place by the tiled GEMM, on the
    fallback path or on the cuBLAS path for a small product (``_tiled``); copied
    into the StateRows' buffer by one kernel, then multiplied, for cuBLAS (here
    for any product)."""
    batch, width = 33, 40
    data, state = draw((70, width), np.float32, seed=16), graph_state(5, 0, 0)
    buffer, mine = np.full((batch, width), np.nan, np.float32), data[5:5 + batch]
    rows, cublas = StateRows(data, state, batch, buffer), NumpyCublas()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "captured_gemm", route.split(",")[0], raising=False)
        patch_cupy(patch, "captured_cublas", lambda: cublas)
        if route == "cuBLAS":
            patch_cupy(patch, "_tiled", lambda *product: False)
        if which == "a":
            w = draw((2, width), np.float32, seed=17)
            out = kernels.gemm(rows, w, np.empty((batch, 2), np.float32), trans_b=True)
            check_product(out, mine, w.T)
        else:
            dz = draw((batch, 2), np.float32, seed=18)
            out = kernels.gemm(dz, rows, np.empty((2, width), np.float32), trans_a=True)
            check_product(out, dz.T, mine)
    if route == "cuBLAS":
        np.testing.assert_array_equal(buffer, mine)
        assert any(operand is buffer for operand in cublas.operands[0])
    else:
        assert np.isnan(buffer).all() and not cublas.operands


@pytest.mark.parametrize("k", [1, 32, 33])
def test_a_recorded_steps_small_products_take_the_tiled_kernel(kernels, k):
    """On the cuBLAS path, a product summing at most TILED_SUM terms (here 32)
    runs the tiled GEMM kernel, a longer one cuBLAS; both give the product."""
    a, b = draw((5, k), np.float32, seed=19), draw((k, 3), np.float32, seed=20)
    cublas = NumpyCublas()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        patch_cupy(patch, "captured_cublas", lambda: cublas)
        patch_cupy(patch, "TILED_SUM", 32)
        out = kernels.gemm(a, b, np.full((5, 3), np.nan, np.float32))
    check_product(out, a, b)
    assert bool(cublas.operands) == (k > 32)


# (m, n, k, whether it reads the batch's rows) of products the tiled kernel ran faster
# than cuBLAS on an H200 (reading the rows in place against cuBLAS after its copy of
# them), and of some it ran slower: the deep and wide models' at batch 128 and 1024.
# The deep model's dz1^T x at 128 took as long either way (5.8 µs tiled, 4.1 + 1.6 by
# cuBLAS and the copy), and tiled spares a bound step a launch and a libcublas call.
FASTER_TILED = [(128, 10, 30, False), (10, 30, 128, False), (128, 30, 10, False),
                (128, 128, 256, False), (10, 128, 128, False), (1024, 30, 10, False),
                (1024, 128, 10, False), (10, 30, 256, False), (128, 30, 784, True),
                (30, 784, 128, True)]
FASTER_BY_CUBLAS = [(128, 30, 784, False), (30, 784, 128, False), (128, 256, 128, False),
                    (10, 10, 1024, False), (256, 128, 256, False), (1024, 128, 256, False),
                    (1024, 30, 784, True), (30, 784, 1024, True), (128, 256, 784, True),
                    (256, 784, 128, True)]


def test_a_recorded_steps_products_take_the_path_measured_faster(kernels):
    """``_tiled`` sends the products the tiled kernel ran faster on an H200 to it,
    and those cuBLAS ran faster to cuBLAS: a sum of at most TILED_SUM terms
    (TILED_ROWS_SUM reading the batch's rows) over at most TILED_THREADS threads,
    one wave; reading the rows, a sum of at most TILED_SUM over two waves."""
    from gpunet.backend.cupy_planned_step import _tiled as tiled
    assert [tiled(*shape) for shape in FASTER_TILED] == [True] * len(FASTER_TILED)
    assert [tiled(*shape) for shape in FASTER_BY_CUBLAS] == [False] * len(FASTER_BY_CUBLAS)


def test_a_product_a_block_past_one_wave_takes_cublas(kernels):
    """``_tiled`` counts whole blocks of TILE x TILE outputs: a sum of 64 terms
    (8 slices, 512 threads a block) over 2 x 256 blocks fits one wave, over 2 x
    257 (one output past) does not, whichever side it is on."""
    from gpunet.backend.cupy_planned_step import _tiled as tiled
    assert tiled(9, 2048, 64, False) and tiled(2048, 9, 64, False)
    assert not tiled(9, 2049, 64, False) and not tiled(2049, 9, 64, False)


def test_a_product_reading_the_rows_takes_two_waves_for_a_short_sum_one_for_a_long(kernels):
    """Reading the batch's rows, a sum of at most TILED_SUM terms (here 64: 512
    threads a block) is tiled over up to two waves (2 x 512 blocks, not 2 x 513);
    a longer one (257 terms: 16 slices, 1024 threads) over one (2 x 128, not 2 x 129)."""
    from gpunet.backend.cupy_planned_step import _tiled as tiled
    assert tiled(9, 4096, 64, True) and not tiled(9, 4097, 64, True)
    assert tiled(9, 2048, 256, True) and not tiled(9, 2056, 256, True)  # TILED_SUM itself
    assert tiled(9, 1024, 257, True) and not tiled(9, 1025, 257, True)


def test_block_operations_copy_strided_inputs_and_refuse_strided_outputs(kernels):
    """A block kernel reads and writes through plain pointers: a strided input is
    copied first, a strided output refused by name."""
    x = draw((6, 8), np.float32)[:, ::2]
    db = np.empty(4, np.float32)
    assert kernels.dense_backward(None, x, None, db) is x
    check_sums(db, x.sum(axis=0), x, RTOL, ATOL)
    dz = np.empty((6, 8), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="^dense_backward writes dz in place and needs it "
                                         "C-contiguous, got strides"):
        kernels.dense_backward(x, x, dz, db, activation="tanh")


def test_every_kernel_is_checked(kernels, cpu):
    """Every kernel is declared by a test, and each test's declared kernels really
    run in it: each test is run here, over its parameters until they all have."""
    assert set().union(*COVERS.values()) == set(KERNELS)
    for test, declared in COVERS.items():
        ran: set[str] = set()
        RECORDING.append(ran)
        try:
            for point in parametrizations(test):
                test(kernels, cpu, **point)
                if declared <= ran:
                    break
        finally:
            RECORDING.remove(ran)
        assert declared <= ran, (f"{test.__name__} never runs {sorted(declared - ran)} "
                                 f"(it ran {sorted(ran)})")


@pytest.mark.parametrize("op", ["softmax_cross_entropy", "matches"])
def test_row_operations_name_themselves_in_shape_errors(kernels, cpu, op):
    z = np.zeros((2, 3), np.float32)
    args = (z, np.zeros((2, 4), np.float32), *((1.0,) if op == "softmax_cross_entropy" else ()))
    for backend in (kernels, cpu):
        with pytest.raises(ValueError, match=rf"^{op} needs two arrays of one shape \(N, k\) or "
                                             rf"\(k,\) with k >= 1, got shapes \(2, 3\) and "
                                             rf"\(2, 4\)$"):
            getattr(backend, op)(*args)


def test_arrays_already_in_the_kernels_dtype_are_not_copied(kernels):
    from gpunet.backend.cupy_planned_step import cast
    x, y = np.ones(3, np.float32), np.ones(3, np.float64)
    same, converted = cast(np.dtype(np.float32), x, y)
    assert same is x and converted.dtype == np.float32


# An activation's scalars, away from their defaults: each kernel takes them as T parameters.
SCALARS = [0.0, 0.3, 2.5]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", SCALARS)
def test_leaky_relu_with_its_alpha(kernels, cpu, alpha, dtype):
    """LeakyRelu's alpha reaches its kernels, alone and in the dense stages."""
    call = ActivationCall("leaky_relu", (alpha,))
    x = draw(1000, dtype, extremes=EXTREMES)
    y_extremes, gy_extremes = zip(*GRAD_EXTREMES)
    y = draw(1000, dtype, -1.5, 1.5, seed=1, extremes=y_extremes)
    gy = draw(1000, dtype, -3.0, 3.0, seed=2, extremes=gy_extremes)
    with np.errstate(all="ignore"):
        expected = [cpu.leaky_relu(x, alpha=alpha), cpu.leaky_relu_grad(y, gy, alpha=alpha)]
    check(kernels.leaky_relu(x, alpha=alpha), expected[0])
    check(kernels.leaky_relu_grad(y, gy, alpha=alpha), expected[1])
    z, bias = draw((7, 3), dtype, seed=8, extremes=EXTREMES), draw(3, dtype, seed=9)

    def stage(backend: Any) -> list[np.ndarray]:
        backend.restart(12345, 0)
        out_y, mask, dz = (np.empty_like(z) for _ in range(3))
        db = np.empty(3, dtype)
        backend.dense_forward(z.copy(), bias, out_y, activation=call, dropout=(0.3, 2.0),
                              mask=mask)
        backend.dense_backward(out_y, z, dz, db, activation=call, mask=mask)
        return [out_y, mask, dz, db]

    for got, expected in zip(*both(kernels, cpu, stage)):
        check(got, expected)


@pytest.mark.parametrize("rows, start, n", [(7, 2, 3), (16, 8, 8)])
def test_a_share_draws_its_window_of_the_whole_batchs_draw(kernels, cpu, rows, start, n):
    """Data-parallel training: a rank's n rows, rows start.. of a batch of ``rows``,
    take their part of the whole batch's draw (DrawWindow) in the kernels as on the CPU."""
    x, bias = draw((n, 5), np.float32), draw(5, np.float32, seed=1)
    window = DrawWindow(rows, start)

    def calls(backend: Any) -> list[np.ndarray]:
        backend.restart(12345, 678)
        y, mask = backend.dropout(x, 0.3, 2.0, window)
        out_y, out_mask = np.empty_like(x), np.empty_like(x)
        backend.dense_forward(x.copy(), bias, out_y, activation="tanh", dropout=(0.3, 2.0),
                              mask=out_mask, window=window)
        assert backend.drawn == 678 + 2 * rows * 5
        return [y, mask, out_y, out_mask]

    for got, expected in zip(*both(kernels, cpu, calls)):
        check(got, expected, precision=np.float32)
    cpu.restart(12345, 678 + start * 5)
    np.testing.assert_array_equal(calls(kernels)[1], cpu.dropout(x, 0.3, 2.0)[1])

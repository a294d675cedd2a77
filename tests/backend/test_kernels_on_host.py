"""The CUDA kernels' operations, run on the host against the NumPy backend.

Each kernel's operation text, verbatim, is compiled with g++ as a plain C++
function (``kernel_source.render(..., "host")``), loaded with ctypes and run on
NumPy arrays the way CuPy would pass them, its type placeholders bound to the
arrays' dtypes by CuPy's rules, mismatches refused (``run``: helpers/cupy_on_host.py).
Every eager operation of gpunet's CupyBackend, and the dense stages', its kernels
run that way and its arrays NumPy's (``kernels``), then matches the NumPy
backend's operation in float32 and float64, over sizes 0 to 1000 and the extremes
the docstrings promise, and on the inputs of mixed dtypes the NumPy backend
takes; every kernel row is checked by a test that says so (``covers``). A
recorded step's operations: test_cupy_planned_step_on_host.py and
test_cupy_graph_step_on_host.py.

This proves the formulas: the arithmetic, the handling of inf and NaN, the row
and column loops and their indexing, the order of the arguments, the dropout
masks bit for bit. The block kernels (``block_kernels/``: a dense stage's
backward, the output stage, the fallback GEMM) run as the host's blocks of fibers
(``helpers/block_kernel_source.py``). Eager ``gemm`` is ``cupy.matmul`` and a
recorded step's is libcublas (tests/backend/test_cublas_capture.py), so neither is
run here. It does not run CUDA:
not NVRTC's code (tests/backend/test_nvrtc.py compiles that), nor CUDA's libm, its
flushed float32 denormals or fused multiply-adds, nor CuPy's binding of strided
and broadcast arrays; tests/backend/test_cupy_kernels.py checks all that on a GPU.
"""
from __future__ import annotations

import re
import shutil
from typing import Any, Callable

import numpy as np
import pytest

import gpunet
from gpunet.backend.activations import ACTIVATIONS as FORMULAS, ActivationCall
from gpunet.backend.draw_window import DrawWindow
from gpunet.backend.graph_step import StateRows, graph_state
from gpunet.backend.kernels import DENSE_VARIANTS, KERNELS, dense_kernel
from helpers.block_kernel_source import check_sums
from helpers.cupy_on_host import (ATOL, DTYPES, EXTREMES, RECORDING, RTOL, NumpyCublas, check,
                                  check_product, draw, patch_cupy)

if shutil.which("g++") is None:
    pytest.skip("g++ is not on PATH, so the kernels cannot be compiled for the host "
                "(apt-get install g++)", allow_module_level=True)

SIZES = (0, 1, 7, 1000)




# (y, gy) pairs for the gradients: a NaN or infinite gy where y <= 0 and y > 0, a NaN y.
GRAD_EXTREMES = ((0.0, np.inf), (-1.0, np.nan), (2.0, np.inf), (np.nan, 1.0),
                 (-0.0, -np.inf), (1.0, np.nan), (0.5, 1e4), (-2.0, -np.inf))


# Every activation of the table (gpunet/backend/activations.py), at its scalars' defaults.
NAMES = list(FORMULAS)


GRADIENTS = [f"{name}_grad" for name in NAMES]


def expect(cpu: gpunet.Backend, op: str, *args: Any) -> Any:
    """The NumPy backend's ``op``, quiet about the overflows and NaNs it is given."""
    with np.errstate(all="ignore"):
        return getattr(cpu, op)(*args)


# Each test checking kernels, with the kernels it says it checks (test_every_kernel_is_checked
# runs it with RECORDING holding a set that ``run`` adds each kernel it ran to).
COVERS: dict[Callable[..., Any], set[str]] = {}


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

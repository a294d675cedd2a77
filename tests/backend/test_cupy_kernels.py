"""The CuPy backend's CUDA kernels against the NumPy backend, on a real device.

Every operation runs over sizes from empty to a million and three, in float32
and float64, on contiguous, strided (``x[..., ::2]``) and transposed inputs;
results keep their dtype and match NumPy within a few ulps. A planned step's
operations (gemm with each transposition, the dense stages in every variant)
run at its shapes, draw the NumPy backend's dropout masks exactly, and,
into the buffers given, allocate nothing.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest

import gpunet
from gpunet.backend.activations import ACTIVATIONS as FORMULAS
from gpunet.losses import SoftmaxCrossEntropy
from helpers.dense_passes import CHAINS, passes_arguments

pytestmark = pytest.mark.gpu

SIZES = (0, 1, 7, 1000, 1_000_003)
DTYPES = (np.float32, np.float64)
LAYOUTS = ("contiguous", "strided", "transposed")
# CUDA's exp and tanh are within 2 ulps, float32 denormals flush to zero on the
# device, and fused multiply-adds round once where NumPy rounds twice; values
# are at most 7 in size, so a few of their ulps bound absolute differences.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 2e-6, np.float64: 1e-14}

grid = pytest.mark.parametrize("n, dtype, layout", [
    (n, dtype, layout) for n in SIZES for dtype in DTYPES for layout in LAYOUTS])


@pytest.fixture
def gpu() -> gpunet.Backend:
    return gpunet.get_backend("cupy")


def draw(n: int, dtype: Any, layout: str, low: float = -6.0, high: float = 6.0,
         seed: int = 0) -> np.ndarray:
    """Host values: n of them, or n rows of two for the transposed layout."""
    shape = (n, 2) if layout == "transposed" else (n,)
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


def on_device(gpu: gpunet.Backend, host: np.ndarray, layout: str) -> Any:
    """``host``'s values on the device: contiguous, every other element of a
    buffer twice as long (``.base``, its gaps zero), or a transposed array."""
    if layout == "transposed":
        return gpu.asarray(np.ascontiguousarray(host.T)).T
    if layout == "strided":
        buffer = gpu.xp.zeros(host.shape[:-1] + (2 * host.shape[-1],), host.dtype)
        view = buffer[..., ::2]
        view[...] = gpu.asarray(host)
        return view
    return gpu.asarray(host)


def check(gpu: gpunet.Backend, result: Any, expected: np.ndarray, size: float = 1.0) -> None:
    """``result`` is a device array like ``expected``, equal within tolerance
    for values of magnitude ``size``."""
    dtype = expected.dtype.type
    assert isinstance(result, gpu.array_type)
    assert result.dtype == dtype and result.shape == expected.shape
    np.testing.assert_allclose(gpu.to_numpy(result), expected,
                               rtol=RTOL[dtype], atol=ATOL[dtype] * size)


@grid
@pytest.mark.parametrize("op", list(FORMULAS))
def test_activation_matches_numpy(gpu, cpu, op, n, dtype, layout):
    xh = draw(n, dtype, layout)
    x = on_device(gpu, xh, layout)
    check(gpu, getattr(gpu, op)(x), getattr(cpu, op)(xh))
    np.testing.assert_array_equal(gpu.to_numpy(x), xh)  # the input is left alone


@grid
@pytest.mark.parametrize("op", list(FORMULAS))
def test_activation_gradient_matches_numpy(gpu, cpu, op, n, dtype, layout):
    yh = getattr(cpu, op)(draw(n, dtype, layout))
    gyh = draw(n, dtype, layout, seed=1)
    gx = getattr(gpu, op + "_grad")(on_device(gpu, yh, layout), on_device(gpu, gyh, layout))
    check(gpu, gx, getattr(cpu, op + "_grad")(yh, gyh))


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_at_extremes_are_finite_and_match_numpy(gpu, cpu, dtype):
    xh = np.concatenate([np.linspace(-1e4, 1e4, 20_001), [-np.inf, np.inf, np.nan]]).astype(dtype)
    for op in ("sigmoid", "tanh"):
        y = gpu.to_numpy(getattr(gpu, op)(gpu.asarray(xh)))
        assert np.all(np.isfinite(y[:-1])) and np.isnan(y[-1])
        np.testing.assert_allclose(y, getattr(cpu, op)(xh), rtol=RTOL[dtype], atol=ATOL[dtype])
    y = gpu.to_numpy(gpu.sigmoid(gpu.asarray(xh)))
    np.testing.assert_array_equal(y[[0, 20_000, -3, -2]], [0, 1, 0, 1])


@grid
@pytest.mark.parametrize("fused", [False, True], ids=["gradient", "loss_and_gradient"])
def test_softmax_cross_entropy_matches_numpy(gpu, n, dtype, layout, fused):
    """(n, 10) logits, as given or as a non-contiguous view, with one-hot targets;
    the mean over the batch makes gradients of size 1/n."""
    zh = draw(10 * n, dtype, "contiguous", -20, 20).reshape(n, 10)
    ah = np.eye(10, dtype=dtype)[np.random.default_rng(2).integers(0, 10, n)]
    z = gpu.asarray(zh) if layout == "contiguous" else on_device(gpu, zh, layout)
    loss = SoftmaxCrossEntropy()
    if fused:
        value, grad = loss.loss_and_gradient(z, gpu.asarray(ah))
        expected_value, expected = loss.loss_and_gradient(zh, ah)
        np.testing.assert_allclose(gpu.to_numpy(value), expected_value, rtol=10 * RTOL[dtype])
    else:
        grad, expected = loss.gradient(z, gpu.asarray(ah)), loss.gradient(zh, ah)
    check(gpu, grad, expected, size=1 / max(n, 1))


def rows(n: int, dtype: Any, low: float = -6.0, high: float = 6.0, seed: int = 0) -> np.ndarray:
    """n host rows of 10 values, for the row operations."""
    return draw(10 * n, dtype, "contiguous", low, high, seed).reshape(n, 10)


@grid
def test_softmax_cross_entropy_op_matches_numpy(gpu, cpu, n, dtype, layout):
    """Logits up to 50 in size and probability targets, which no row need sum to 1."""
    zh, ah = rows(n, dtype, -50, 50), rows(n, dtype, 0.0, 1.0, seed=1)
    losses, grad = gpu.softmax_cross_entropy(on_device(gpu, zh, layout),
                                             on_device(gpu, ah, layout), 0.25)
    expected_losses, expected_grad = cpu.softmax_cross_entropy(zh, ah, 0.25)
    check(gpu, grad, expected_grad)
    check(gpu, losses, expected_losses, size=100.0)


@grid
def test_matches_agrees_with_argmax(gpu, cpu, n, dtype, layout):
    """Rows with ties (rounded values) and NaNs: the first largest, NaN counting as largest."""
    ph, th = np.round(rows(n, dtype)), np.round(rows(n, dtype, seed=1))
    ph.flat[::7] = np.nan
    hits = gpu.matches(on_device(gpu, ph, layout), on_device(gpu, th, layout))
    assert hits.dtype == bool and hits.shape == (n,)
    np.testing.assert_array_equal(gpu.to_numpy(hits), cpu.matches(ph, th))


def test_row_operations_refuse_empty_rows(gpu):
    z = gpu.xp.zeros((3, 0), np.float32)
    for call in (lambda: gpu.matches(z, z), lambda: gpu.softmax_cross_entropy(z, z, 1.0)):
        with pytest.raises(ValueError, match=r"k >= 1"):
            call()


@grid
@pytest.mark.parametrize("p, scale", [(0.3, 1), (0.1, 1 / 0.9), (0.0, 1)])
def test_dropout_draws_the_numpy_backends_mask(gpu, cpu, n, dtype, layout, p, scale):
    """The kernel's own draws give exactly the mask the NumPy backend draws
    from the same seed, element i of x (in C order) taking draw i."""
    xh = draw(n, dtype, layout)
    gpunet.seed(7)
    y, mask = gpu.dropout(on_device(gpu, xh, layout), p, scale)
    expected_y, expected_mask = cpu.dropout(xh, p, scale)
    for result, expected in ((mask, expected_mask), (y, expected_y)):
        assert isinstance(result, gpu.array_type) and result.dtype == dtype
        np.testing.assert_array_equal(gpu.to_numpy(result), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_keeps_one_minus_p(gpu, dtype, p):
    n = 1_000_003
    _, mask = gpu.dropout(gpu.xp.ones(n, dtype), p, 1 / (1 - p))
    values = gpu.to_numpy(mask)
    assert set(np.unique(values).tolist()) == {0.0, float(dtype(1 / (1 - p)))}
    kept = np.count_nonzero(values) / n
    assert abs(kept - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)


@grid
@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_updates_in_place_match_numpy(gpu, cpu, n, dtype, layout, optimizer):
    """Two steps on the arrays given (a strided one leaves its buffer's gaps alone)."""
    ph, gh = draw(n, dtype, layout), draw(n, dtype, layout, seed=1)
    vh = np.zeros_like(ph)
    param, grad = on_device(gpu, ph, layout), on_device(gpu, gh, layout)
    velocity = on_device(gpu, vh, layout)
    for _ in range(2):
        if optimizer == "sgd":
            assert gpu.sgd_update(param, grad, 0.1) is None
            cpu.sgd_update(ph, gh, 0.1)
        else:
            assert gpu.momentum_update(param, velocity, grad, 0.1, 0.9) is None
            cpu.momentum_update(ph, vh, gh, 0.1, 0.9)
    check(gpu, param, ph)
    check(gpu, velocity, vh)
    if layout == "strided":
        assert not gpu.to_numpy(param.base[..., 1::2]).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(FORMULAS))
def test_activation_into_out_matches_numpy(gpu, cpu, op, dtype):
    """``out=`` takes the result, also when it is the input (in place)."""
    xh = draw(1000, dtype, "contiguous")
    yh, gyh = getattr(cpu, op)(xh), draw(1000, dtype, "contiguous", seed=1)
    gxh = getattr(cpu, op + "_grad")(yh, gyh)
    x, y, gy = (gpu.asarray(h.copy()) for h in (xh, yh, gyh))
    assert getattr(gpu, op)(x, out=x) is x
    check(gpu, x, yh)
    assert getattr(gpu, op + "_grad")(y, gy, out=gy) is gy
    check(gpu, gy, gxh)


# A planned step's operations (products.py and planned_step.py): gemm, and each
# dense-stage kernel in every variant, against the NumPy backend.
ACTIVATIONS = [None, *FORMULAS]
DENSE_SHAPES = [(0, 30), (1, 1), (128, 30), (1000, 256)]
# (n, k, m) of op(a) op(b): the deep model's products, one row, and k = 1 (an outer product).
GEMM_SHAPES = [(128, 784, 30), (30, 128, 784), (1, 30, 10), (30, 1, 784), (0, 5, 3),
               (256, 784, 128)]  # the last too long to tile: cuBLAS on a recorded step


def operands(n: int, k: int, m: int, dtype: Any, trans_a: bool,
             trans_b: bool) -> tuple[np.ndarray, np.ndarray]:
    """Host a and b whose op(a) is (n, k) and op(b) is (k, m), stored as op says."""
    a = draw(n * k, dtype, "contiguous", -1, 1).reshape((k, n) if trans_a else (n, k))
    b = draw(k * m, dtype, "contiguous", -1, 1, seed=1).reshape((m, k) if trans_b else (k, m))
    return a, b


@pytest.mark.parametrize("given_out", [False, True], ids=["new", "into_out"])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("n, k, m", GEMM_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_matches_numpy(gpu, cpu, dtype, n, k, m, trans_a, trans_b, given_out):
    ah, bh = operands(n, k, m, dtype, trans_a, trans_b)
    out = gpu.xp.full((n, m), np.nan, dtype) if given_out else None
    result = gpu.gemm(gpu.asarray(ah), gpu.asarray(bh), out, trans_a=trans_a, trans_b=trans_b)
    assert result is out or not given_out
    check(gpu, result, cpu.gemm(ah, bh, trans_a=trans_a, trans_b=trans_b), size=k)


@pytest.mark.parametrize("path", ["cuBLAS", "fallback GEMM"])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("n, k, m", GEMM_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_recorded_steps_gemm_matches_numpy(gpu, cpu, monkeypatch, dtype, n, k, m, trans_a,
                                             trans_b, path):
    """gemm as a planned or graph step makes it, into the buffer given: libcublas's
    plain call, but the small products (``_tiled``) by the tiled kernel
    ("cuBLAS"), or the tiled kernel alone (the capture's "fallback GEMM")."""
    from gpunet.backend.cublas_capture import captured_cublas
    ah, bh = operands(n, k, m, dtype, trans_a, trans_b)
    out = gpu.xp.full((n, m), np.nan, dtype)
    captured_cublas().prepare(gpu.xp.cuda.get_current_stream())
    monkeypatch.setattr(gpu, "captured_gemm", path)
    assert gpu.gemm(gpu.asarray(ah), gpu.asarray(bh), out, trans_a=trans_a,
                    trans_b=trans_b) is out
    check(gpu, out, cpu.gemm(ah, bh, trans_a=trans_a, trans_b=trans_b), size=k)


def dense_forward_on(backend: gpunet.Backend, zh: np.ndarray, bias: np.ndarray,
                     activation: str | None, dropout: tuple[float, float] | None) -> tuple:
    """``backend``'s dense_forward in place (y is z), from the state gpunet.seed(7)
    gives: (y, mask) as host arrays."""
    gpunet.seed(7)
    z = backend.asarray(zh.copy())
    mask = None if dropout is None else backend.xp.empty_like(z)
    y = backend.dense_forward(z, backend.asarray(bias), z, activation=activation,
                              dropout=dropout, mask=mask)
    assert y is z
    return backend.to_numpy(y), None if mask is None else backend.to_numpy(mask)


@pytest.mark.parametrize("dropout", [None, (0.1, 1 / 0.9), (0.3, 1.0)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", DENSE_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_forward_matches_numpy(gpu, cpu, dtype, shape, activation, dropout):
    """y = activation((z + bias) * mask) in place, the mask exactly the NumPy backend's."""
    zh = draw(math.prod(shape), dtype, "contiguous").reshape(shape)
    bias = draw(shape[1], dtype, "contiguous", -1, 1, seed=1)
    y, mask = dense_forward_on(gpu, zh, bias, activation, dropout)
    expected_y, expected_mask = dense_forward_on(cpu, zh, bias, activation, dropout)
    np.testing.assert_allclose(y, expected_y, rtol=RTOL[dtype], atol=ATOL[dtype] * 7)
    if dropout is not None:
        np.testing.assert_array_equal(mask, expected_mask)


@pytest.mark.parametrize("masked", [False, True], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", DENSE_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_matches_numpy(gpu, cpu, dtype, shape, activation, masked):
    """dz = f'(y) gy (times the mask), and db its sums over the rows (of size
    up to rows times the largest term, 7)."""
    def values(low: float, high: float, seed: int) -> np.ndarray:
        return draw(math.prod(shape), dtype, "contiguous", low, high, seed).reshape(shape)

    yh = getattr(cpu, activation)(values(-6, 6, 0)) if activation else None
    gyh = values(-6, 6, 1)
    maskh = (values(0, 1, 2) >= 0.1) * dtype(1 / 0.9) if masked else None
    dz, db = gpu.xp.full(shape, np.nan, dtype), gpu.xp.full(shape[1], np.nan, dtype)
    y, gy, mask = (None if h is None else gpu.asarray(h) for h in (yh, gyh, maskh))
    result = gpu.dense_backward(y, gy, dz, db, activation=activation, mask=mask)
    assert result is (dz if activation or masked else gy)
    expected_db = np.empty(shape[1], dtype)
    expected = cpu.dense_backward(yh, gyh, np.empty(shape, dtype), expected_db,
                                  activation=activation, mask=maskh)
    check(gpu, result, expected)
    check(gpu, db, expected_db, size=7 * shape[0])


@grid
def test_dense_softmax_cross_entropy_matches_numpy(gpu, cpu, n, dtype, layout):
    """(n, 10) logits and bias, as given or as non-contiguous views, and one-hot
    targets; the losses and hits go into slices of epoch-sized buffers, as
    EpochMetrics keeps them, and nothing else of those buffers changes. The bias
    gradient is the gradient's exact column sums within rounding: NumPy's own float32
    sums, row after row, were 6.4 off at a million rows, the kernel's 0.22 (H200)."""
    zh, bias = rows(n, dtype, -20, 20), draw(10, dtype, "contiguous", -5, 5, seed=1)
    ah = np.eye(10, dtype=dtype)[np.random.default_rng(2).integers(0, 10, n)]
    expected_losses, expected_hits = np.empty(n), np.empty(n, bool)
    expected_gradient, expected_db = np.empty((n, 10), dtype), np.empty(10, dtype)
    cpu.dense_softmax_cross_entropy(zh.copy(), bias, ah, 0.25, expected_gradient,
                                    expected_losses, expected_hits, expected_db)
    losses, hits = gpu.xp.full(n + 3, np.nan), gpu.xp.zeros(n + 3, bool)
    gradient, db = gpu.xp.full((n, 10), np.nan, dtype), gpu.xp.full(10, np.nan, dtype)
    gpu.dense_softmax_cross_entropy(on_device(gpu, zh.copy(), layout),
                                    on_device(gpu, bias, layout), gpu.asarray(ah), 0.25,
                                    gradient, losses[2:-1], hits[2:-1], db)
    check(gpu, gradient, expected_gradient)
    check(gpu, db, expected_gradient.astype(np.float64).sum(axis=0).astype(dtype), size=n)
    np.testing.assert_allclose(gpu.to_numpy(losses[2:-1]), expected_losses,
                               rtol=RTOL[dtype], atol=ATOL[dtype] * 100)
    np.testing.assert_array_equal(gpu.to_numpy(hits[2:-1]), expected_hits)
    np.testing.assert_array_equal(gpu.to_numpy(hits[2:-1]), cpu.matches(zh + bias, ah))
    assert np.isnan(gpu.to_numpy(losses[[0, 1, -1]])).all()
    assert not gpu.to_numpy(hits[[0, 1, -1]]).any()


def recorded(gpu: gpunet.Backend, monkeypatch: Any, path: str) -> None:
    """``gpu`` making its operations as a recorded step makes them, by ``path``."""
    from gpunet.backend.cublas_capture import captured_cublas
    captured_cublas().prepare(gpu.xp.cuda.get_current_stream())
    monkeypatch.setattr(gpu, "captured_gemm", path)


@pytest.mark.parametrize("path", ["cuBLAS", "fallback GEMM"])
@pytest.mark.parametrize("activation, masked", [(None, False), (None, True), ("tanh", True),
                                                ("relu", False)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_recorded_steps_product_and_backward_fused_match_them_apart(gpu, cpu, monkeypatch,
                                                                      dtype, activation, masked,
                                                                      path):
    """gemm_dense_backward at the deep model's shapes (dz2 W2 into gy1, then its
    backward: one tiled kernel and the column sums): the gy, dz and db of the
    product, then dense_backward, made the same way, bit for bit; and NumPy's
    within rounding."""
    rng = np.random.default_rng(5)
    gh, wh = (rng.uniform(-1, 1, shape).astype(dtype) for shape in ((128, 10), (10, 30)))
    yh = np.tanh(rng.uniform(-2, 2, (128, 30))).astype(dtype) if activation else None
    maskh = (rng.uniform(0, 1, (128, 30)) >= 0.1) * dtype(1 / 0.9) if masked else None
    recorded(gpu, monkeypatch, path)
    g, w, y, mask = (None if h is None else gpu.asarray(h) for h in (gh, wh, yh, maskh))
    results = []
    for fused in (True, False):
        gy, dz, db = (gpu.xp.full(shape, np.nan, dtype) for shape in ((128, 30), (128, 30), 30))
        if fused:
            out = gpu.gemm_dense_backward(g, w, gy, y, dz, db, activation=activation, mask=mask)
        else:
            gpu.gemm(g, w, out=gy)
            out = gpu.dense_backward(y, gy, dz, db, activation=activation, mask=mask)
        results.append([gpu.to_numpy(x) for x in (gy, out, db)])
    for got, expected in zip(*results, strict=True):
        np.testing.assert_array_equal(got, expected)
    expected_db = np.empty(30, dtype)
    expected = cpu.gemm_dense_backward(gh, wh, np.empty((128, 30), dtype), yh,
                                       np.empty((128, 30), dtype), expected_db,
                                       activation=activation, mask=maskh)
    np.testing.assert_allclose(results[0][1], expected, rtol=RTOL[dtype], atol=ATOL[dtype] * 10)
    np.testing.assert_allclose(results[0][2], expected_db, rtol=RTOL[dtype],
                               atol=ATOL[dtype] * 10 * 128)


@pytest.mark.parametrize("path", ["cuBLAS", "fallback GEMM"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_recorded_steps_last_product_and_output_stage_fused_match_them_apart(
        gpu, cpu, monkeypatch, dtype, path):
    """gemm_dense_softmax_cross_entropy at the deep model's shapes (y2 W3^T, 10
    terms each of 10 logits, computed by the output stage's threads): the z,
    gradient, losses, hits and db of the tiled product, then the output stage,
    bit for bit; and NumPy's within rounding."""
    rng = np.random.default_rng(6)
    hh, wh = (rng.uniform(-1, 1, shape).astype(dtype) for shape in ((128, 10), (10, 10)))
    bias = rng.uniform(-1, 1, 10).astype(dtype)
    ah = np.eye(10, dtype=dtype)[rng.integers(0, 10, 128)]
    recorded(gpu, monkeypatch, path)
    results = []
    for fused in (True, False):
        z, gradient = (gpu.xp.full((128, 10), np.nan, dtype) for _ in range(2))
        losses, hits, db = gpu.xp.empty(128), gpu.xp.empty(128, bool), gpu.xp.empty(10, dtype)
        output = (gpu.asarray(bias), gpu.asarray(ah), 0.5, gradient, losses, hits, db)
        if fused:
            gpu.gemm_dense_softmax_cross_entropy(gpu.asarray(hh), gpu.asarray(wh), z, *output)
        else:
            gpu.gemm(gpu.asarray(hh), gpu.asarray(wh), out=z, trans_b=True)
            gpu.dense_softmax_cross_entropy(z, *output)
        results.append([gpu.to_numpy(x) for x in (z, gradient, losses, hits, db)])
    for got, expected in zip(*results, strict=True):
        np.testing.assert_array_equal(got, expected)
    expected = (np.empty((128, 10), dtype), np.empty((128, 10), dtype), np.empty(128),
                np.empty(128, bool), np.empty(10, dtype))
    cpu.gemm_dense_softmax_cross_entropy(hh, wh, expected[0], bias, ah, 0.5, *expected[1:])
    for got, want in zip(results[0][1:], expected[1:], strict=True):
        if want.dtype == bool:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=ATOL[dtype] * 300)


@pytest.mark.parametrize("path", ["cuBLAS", "fallback GEMM"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_recorded_steps_row_chain_matches_its_parts(gpu, monkeypatch, dtype, path):
    """dense_passes at the deep model's shapes (batch 128, 784 -> 30 -> 10 -> 10
    but 20 inputs): the first stage's fused product, the row chain and the
    column sums give every output, mask, logit, loss, hit, gradient, gy, dz and
    bias gradient of its parts (each fused as a recorded step fuses it), bit for bit."""
    from gpunet.backend.planned_step import PlannedStepOperations
    recorded(gpu, monkeypatch, path)
    results = []
    for passes in (gpu.dense_passes, functools.partial(PlannedStepOperations.dense_passes, gpu)):
        arguments, written = passes_arguments(*CHAINS["deep"], dtype, rows=128,
                                              asarray=gpu.asarray)
        passes(*arguments)
        results.append({name: gpu.to_numpy(array) for name, array in written.items()})
    for name, expected in results[1].items():
        np.testing.assert_array_equal(results[0][name], expected, err_msg=name)


@pytest.mark.parametrize("offset", [0, 100, 150, 199, 200])
def test_read_ahead_runs_up_to_the_last_row_and_changes_nothing(gpu, offset):
    """read_ahead from a state near the end of the epoch's arrays (the next rows
    there, some of them, none): it runs, allocates nothing and leaves the inputs
    and targets as they were."""
    from gpunet.backend import block_kernels
    from gpunet.backend.graph_step import graph_state
    x = np.random.default_rng(3).uniform(-1, 1, (200, 784)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(200) % 10]
    inputs, targets = gpu.asarray(x), gpu.asarray(y)
    state = gpu.xp.asarray(graph_state(offset, 0, 0))
    assert allocations(lambda: block_kernels.read_ahead(inputs, targets, state, 64)) == 0
    gpu.synchronize()
    np.testing.assert_array_equal(gpu.to_numpy(inputs), x)
    np.testing.assert_array_equal(gpu.to_numpy(targets), y)


def allocations(run: Any) -> int:
    """How many device arrays ``run()`` allocates: CuPy's memory hooks see each."""
    import cupy

    class Counter(cupy.cuda.MemoryHook):
        name = "gpunet_test_allocations"
        count = 0

        def malloc_preprocess(self, **kwargs: Any) -> None:
            self.count += 1

    with Counter() as counter:
        run()
    return counter.count


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_planned_steps_operations_allocate_nothing(gpu, dtype):
    """Into buffers given, in one dtype, gemm and the dense operations make no
    device array: no operand is copied, cast or made contiguous, and nothing
    is reduced through a temporary."""
    xp, n, k, m = gpu.xp, 128, 784, 30
    x, w, bias = xp.ones((n, k), dtype), xp.ones((m, k), dtype), xp.ones(m, dtype)
    z, mask, gz, dz, w_grad, dx = (xp.empty(shape, dtype) for shape in
                                   ((n, m), (n, m), (n, m), (n, m), (m, k), (n, k)))
    db, a = xp.empty(m, dtype), xp.eye(m, dtype=dtype)[xp.arange(n) % m]
    losses, hits = xp.empty(n), xp.empty(n, bool)

    def step() -> None:
        gpu.gemm(x, w, out=z, trans_b=True)
        gpu.dense_forward(z, bias, z, activation="tanh", dropout=(0.1, 1.0), mask=mask)
        gpu.dense_softmax_cross_entropy(z, bias, a, 1 / n, gz, losses, hits, db)
        gpu.dense_backward(z, gz, dz, db, activation="tanh", mask=mask)
        gpu.gemm(dz, x, out=w_grad, trans_a=True)
        gpu.gemm(dz, w, out=dx)
        gpu.gemm(dz[:1], x[:1], out=w_grad, trans_a=True)  # one row: an outer product

    step()  # compiles the kernels, creates the cuBLAS handle
    assert allocations(step) == 0

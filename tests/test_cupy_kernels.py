"""The CuPy backend's CUDA kernels against the NumPy backend, on a real device.

Every operation runs over sizes from empty to a million and three, in float32
and float64, on contiguous, strided (``x[..., ::2]``) and transposed inputs;
results keep their dtype and match NumPy within a few ulps.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gpunet
from gpunet.losses import SoftmaxCrossEntropy

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


@pytest.fixture
def cpu() -> gpunet.Backend:
    return gpunet.get_backend("numpy")


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
@pytest.mark.parametrize("op", ["sigmoid", "tanh", "relu"])
def test_activation_matches_numpy(gpu, cpu, op, n, dtype, layout):
    xh = draw(n, dtype, layout)
    x = on_device(gpu, xh, layout)
    check(gpu, getattr(gpu, op)(x), getattr(cpu, op)(xh))
    np.testing.assert_array_equal(gpu.to_numpy(x), xh)  # the input is left alone


@grid
@pytest.mark.parametrize("op", ["sigmoid", "tanh", "relu"])
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

"""The backend seam: choosing a backend, and the operations every backend provides."""
import numpy as np
import pytest

import gpunet
from gpunet.backend import BackendUnavailable, cuda_status, explain_auto
from conftest import host

FLOATS = [np.float32, np.float64]


def test_names_and_default(monkeypatch):
    assert gpunet.get_backend("numpy").name == "numpy"
    assert gpunet.get_backend(" NumPy ") is gpunet.get_backend("numpy")
    monkeypatch.setenv("GPUNET_BACKEND", "numpy")
    assert gpunet.get_backend().name == "numpy"
    monkeypatch.delenv("GPUNET_BACKEND")
    assert gpunet.get_backend() is gpunet.get_backend("auto")


def test_unknown_backend_lists_valid_names(monkeypatch):
    with pytest.raises(ValueError, match="'tpu'.*numpy, cupy, auto"):
        gpunet.get_backend("tpu")
    monkeypatch.setenv("GPUNET_BACKEND", "metal")
    with pytest.raises(ValueError, match="'metal'"):
        gpunet.get_backend()


def test_auto_explains_its_choice():
    line = explain_auto()
    assert "\n" not in line
    assert line.startswith("auto -> cupy" if cuda_status().usable else "auto -> numpy")
    assert gpunet.get_backend("auto").name == ("cupy" if cuda_status().usable else "numpy")


def test_cupy_without_device_says_why():
    if cuda_status().usable:
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(BackendUnavailable, match="'cupy' backend is unavailable: .+"):
        gpunet.get_backend("cupy")


def test_asarray_dtypes(backend):
    assert backend.asarray([1, 2]).dtype == np.float32
    assert backend.asarray(np.arange(3)).dtype == np.float32
    assert backend.asarray(np.ones(2, np.float64)).dtype == np.float64
    assert backend.asarray(np.ones(2, np.float64), np.float32).dtype == np.float32
    x = backend.asarray(np.ones(3, np.float32))
    assert backend.asarray(x) is x
    np.testing.assert_array_equal(backend.to_numpy(backend.asarray([[1, 2]])), [[1, 2]])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", ["sigmoid", "tanh", "relu"])
def test_activations_keep_dtype_and_shape(backend, op, dtype):
    for shape in [(0,), (5,), (3, 4)]:
        x = backend.asarray(np.random.default_rng(0).standard_normal(shape), dtype)
        y = getattr(backend, op)(x)
        gx = getattr(backend, op + "_grad")(y, backend.asarray(np.ones(shape), dtype))
        assert y.dtype == gx.dtype == dtype and y.shape == gx.shape == shape


@pytest.mark.parametrize("dtype", FLOATS)
def test_activations_stay_finite_and_exact_at_extremes(backend, dtype):
    x = backend.asarray([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        sig = host(backend, backend.sigmoid(x))
        tanh = host(backend, backend.tanh(x))
    assert np.all(np.isfinite(sig)) and np.all(np.isfinite(tanh))
    reference = 1 / (1 + np.exp(-np.array([-20.0, 0.0, 20.0])))
    np.testing.assert_allclose(sig[[2, 3, 4]], reference, rtol=1e-6)
    np.testing.assert_array_equal(sig[[0, 6]], [0, 1])
    np.testing.assert_array_equal(tanh[[0, 1, 5, 6]], [-1, -1, 1, 1])


def test_activation_values_and_gradients_from_outputs(backend):
    xs = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    x = backend.asarray(xs, np.float64)
    gy = backend.asarray([1.0, 2.0, 3.0, 4.0, 5.0], np.float64)
    s = 1 / (1 + np.exp(-xs))
    cases = {"sigmoid": (s, s * (1 - s)), "tanh": (np.tanh(xs), 1 - np.tanh(xs) ** 2),
             "relu": (np.maximum(xs, 0), (xs > 0).astype(float))}
    for op, (value, slope) in cases.items():
        y = getattr(backend, op)(x)
        np.testing.assert_allclose(host(backend, y), value, rtol=1e-12)
        np.testing.assert_allclose(host(backend, getattr(backend, op + "_grad")(y, gy)),
                                   slope * host(backend, gy), rtol=1e-12)


def test_updates_are_in_place_and_keep_float32(backend):
    param = backend.asarray([1.0, 2.0])
    grad = backend.asarray([0.5, -1.0])
    velocity = backend.zeros_like(param)
    backend.sgd_update(param, grad, 0.1)
    np.testing.assert_allclose(host(backend, param), [0.95, 2.1], rtol=1e-6)
    backend.momentum_update(param, velocity, grad, 0.1, 0.9)
    np.testing.assert_allclose(host(backend, velocity), [0.05, -0.1], rtol=1e-6)
    np.testing.assert_allclose(host(backend, param), [0.945, 2.11], rtol=1e-6)
    assert param.dtype == velocity.dtype == np.float32


def test_seed_repeats_random_draws(backend):
    gpunet.seed(5)
    first = host(backend, backend.permutation(50)), host(backend, backend.dropout(
        backend.asarray(np.ones(100)), 0.5, 1)[1])
    gpunet.seed(5)
    second = host(backend, backend.permutation(50)), host(backend, backend.dropout(
        backend.asarray(np.ones(100)), 0.5, 1)[1])
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert sorted(first[0].tolist()) == list(range(50))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        gpunet.seed(bad)


def test_backend_of(numpy_backend):
    assert gpunet.backend_of(np.zeros(2)) is numpy_backend
    assert gpunet.backend_of([1.0]) is gpunet.get_backend()

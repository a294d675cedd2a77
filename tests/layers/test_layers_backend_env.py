"""Layers and optimizers compute on the backend that holds their arrays:
$GPUNET_BACKEND is only the default for what names no backend."""
import numpy as np
import pytest

import gpunet


@pytest.mark.parametrize("make", [lambda: gpunet.GradientDescent(0.5),
                                  lambda: gpunet.Momentum(0.5, 0.75)],
                         ids=["GradientDescent", "Momentum"])
def test_a_numpy_network_trains_on_numpy_whatever_gpunet_backend_names(numpy_backend,
                                                                        monkeypatch, make):
    optimizer = make()
    model = gpunet.Sequential([gpunet.Linear(3, 4, backend=numpy_backend), gpunet.Dropout(0.5),
                               gpunet.Tanh(), gpunet.Linear(4, 2, backend=numpy_backend)])
    monkeypatch.setenv("GPUNET_BACKEND", "cupy")  # on a machine without CUDA, unusable
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    model.forward(x)
    dx = model.backward(g)
    assert type(dx) is np.ndarray and dx.shape == (5, 3)
    before = [p.copy() for p in model.params()]
    grads = [grad.copy() for grad in model.grads()]
    optimizer.step(model)
    # the first step: GradientDescent moves by lr * grad, Momentum by lr * (1 - mo) * grad
    moved = 0.5 if isinstance(optimizer, gpunet.GradientDescent) else 0.5 * 0.25
    for param, was, grad in zip(model.params(), before, grads, strict=True):
        assert type(param) is np.ndarray
        np.testing.assert_allclose(param, was - moved * grad, rtol=1e-6, atol=1e-7)
    assert all(type(u) is np.ndarray for u in getattr(optimizer, "updates", []))

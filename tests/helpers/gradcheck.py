"""Central-difference gradient checks in float64."""
from __future__ import annotations

from typing import Callable

import numpy as np

import gpunet

STEP = 1e-6
RTOL = 1e-6
ATOL = 1e-9


def numerical_gradient(f: Callable[[], float], x, backend: gpunet.Backend) -> np.ndarray:
    """d f / d x by central differences, perturbing ``x`` (a backend array) in place."""
    grad = np.zeros(x.shape)
    flat = x.reshape(-1)
    for i in range(flat.size):
        original = float(flat[i])
        flat[i] = original + STEP
        up = f()
        flat[i] = original - STEP
        down = f()
        flat[i] = original
        grad.flat[i] = (up - down) / (2 * STEP)
    return grad


def check_layer(layer: gpunet.Layer, x, backend: gpunet.Backend, reseed: bool = False) -> None:
    """Compare backward's input and parameter gradients with central differences
    of L = sum(forward(x) * g) for a fixed random upstream gradient g.
    ``reseed`` re-seeds before every forward, so a Dropout draws the same mask."""
    def forward():
        if reseed:
            gpunet.seed(7)
        return layer.forward(x)

    g = backend.asarray(np.random.default_rng(3).standard_normal(forward().shape))

    def objective() -> float:
        return float((forward() * g).sum())

    forward()
    dx = backend.to_numpy(layer.backward(g))
    grads = [backend.to_numpy(gr).copy() for gr in layer.grads()]
    np.testing.assert_allclose(dx, numerical_gradient(objective, x, backend), rtol=RTOL, atol=ATOL)
    for param, grad in zip(layer.params(), grads):
        np.testing.assert_allclose(grad, numerical_gradient(objective, param, backend),
                                   rtol=RTOL, atol=ATOL)


def check_loss(loss: gpunet.Loss, predicted, actual, backend: gpunet.Backend) -> None:
    analytic = backend.to_numpy(loss.gradient(predicted, actual))
    numeric = numerical_gradient(lambda: float(loss.loss(predicted, actual)), predicted, backend)
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL)

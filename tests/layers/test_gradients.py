"""Every layer and loss against central differences, in float64, on batches and single samples."""
import numpy as np
import pytest

import gpunet
from helpers.gradcheck import check_layer, check_loss

F64 = np.float64


def inputs(backend, shape, seed=0, away_from_zero=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    if away_from_zero:  # keep the relus' kink out of reach of the finite difference
        x = np.where(np.abs(x) < 0.1, 0.5, x)
    return backend.asarray(x, F64)


@pytest.mark.parametrize("shape", [(5, 3), (3,), (1, 3)])
@pytest.mark.parametrize("init", ["xavier", "glorot", "normal", "uniform"])
def test_linear(backend, shape, init):
    check_layer(gpunet.Linear(3, 4, init, dtype=F64, backend=backend), inputs(backend, shape), backend)


@pytest.mark.parametrize("activation", [gpunet.Sigmoid, gpunet.Tanh, gpunet.Relu, gpunet.LeakyRelu,
                                        lambda: gpunet.LeakyRelu(0.3)])
@pytest.mark.parametrize("shape", [(4, 6), (6,)])
def test_activations(backend, activation, shape):
    check_layer(activation(), inputs(backend, shape, away_from_zero=True), backend)


@pytest.mark.parametrize("inverted", [False, True])
def test_dropout(backend, inverted):
    check_layer(gpunet.Dropout(0.3, inverted=inverted), inputs(backend, (8, 5)), backend, reseed=True)


def test_sequential_deep_model(backend):
    model = gpunet.Sequential([
        gpunet.Linear(6, 5, dtype=F64, backend=backend), gpunet.Dropout(0.2), gpunet.Tanh(),
        gpunet.Linear(5, 4, dtype=F64, backend=backend), gpunet.Sigmoid(),
        gpunet.Linear(4, 3, dtype=F64, backend=backend), gpunet.Relu(),
    ])
    check_layer(model, inputs(backend, (4, 6)), backend, reseed=True)


def targets(backend, shape, seed=1):
    """Rows of probabilities (each sums to 1), as the softmax gradient assumes."""
    t = np.random.default_rng(seed).random(shape)
    return backend.asarray(t / t.sum(axis=-1, keepdims=True), F64)


@pytest.mark.parametrize("loss", [gpunet.SSE, gpunet.SoftmaxCrossEntropy])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(5, 4), (4,)])
def test_losses(backend, loss, reduction, shape):
    check_loss(loss(reduction), inputs(backend, shape), targets(backend, shape), backend)


def test_softmax_cross_entropy_large_logits(backend):
    predicted = backend.asarray([[30.0, -20.0, 5.0], [-40.0, 40.0, 0.0]], F64)
    check_loss(gpunet.SoftmaxCrossEntropy(), predicted, targets(backend, (2, 3)), backend)

"""Optimizers: the notebook's update rules, in place, on flat and separate parameters."""
import numpy as np
import pytest

import gpunet
from gpunet.optimizers import valid_learning_rate, valid_momentum
from helpers.arrays import host


class Params(gpunet.Layer):
    """A layer that is just parameters with given gradients (no flat buffer)."""

    def __init__(self, backend, params, grads):
        self.p = [backend.asarray(p) for p in params]
        self.g = [backend.asarray(g) for g in grads]

    def params(self):
        return self.p

    def grads(self):
        return self.g


def test_gradient_descent(backend):
    layer = Params(backend, [[1.0, 2.0], [[3.0]]], [[1.0, -1.0], [[2.0]]])
    before = list(layer.params())
    gpunet.GradientDescent(0.5).step(layer)
    np.testing.assert_allclose(host(backend, layer.p[0]), [0.5, 2.5])
    np.testing.assert_allclose(host(backend, layer.p[1]), [[2.0]])
    assert all(a is b for a, b in zip(before, layer.params()))


def test_momentum_is_the_notebooks_moving_average(backend):
    layer = Params(backend, [[1.0]], [[1.0]])
    optimizer = gpunet.Momentum(learning_rate=0.1, momentum=0.9)
    update, param = 0.0, 1.0
    for grad in [1.0, -2.0, 0.5]:
        layer.g[0][...] = grad
        optimizer.step(layer)
        update = 0.9 * update + 0.1 * grad
        param -= 0.1 * update
        assert float(host(backend, layer.p[0])[0]) == pytest.approx(param, rel=1e-6)
        assert float(host(backend, optimizer.updates[0])[0]) == pytest.approx(update, rel=1e-6)


def test_flat_and_separate_parameters_update_alike(backend):
    """A Sequential updates through its flat buffers; the same maths, parameter by parameter."""
    def model():
        gpunet.seed(0)
        return gpunet.Sequential([gpunet.Linear(4, 3, backend=backend), gpunet.Tanh(),
                                  gpunet.Linear(3, 2, backend=backend)])
    flat, separate = model(), model()
    separate._flat = None
    assert flat.flat() is not None and separate.flat() is None
    x = np.random.default_rng(0).standard_normal((5, 4))
    for optimizer_class in [lambda: gpunet.GradientDescent(0.1), lambda: gpunet.Momentum(0.1, 0.9)]:
        opt_flat, opt_separate = optimizer_class(), optimizer_class()
        for _ in range(3):
            for net, opt in [(flat, opt_flat), (separate, opt_separate)]:
                net.backward(net.forward(x))
                opt.step(net)
        for a, b in zip(flat.params(), separate.params()):
            np.testing.assert_allclose(host(backend, a), host(backend, b), rtol=1e-6)


def test_replacing_a_layer_leaves_the_flat_path_safely(numpy_backend):
    net = gpunet.Sequential([gpunet.Linear(2, 2, backend=numpy_backend)])
    assert net.flat() is not None
    net.layers[0] = gpunet.Linear(2, 2, backend=numpy_backend)
    assert net.flat() is None
    before = net.layers[0].w.copy()
    net.backward(net.forward([[1.0, 1.0]]))
    grad = net.layers[0].w_grad.copy()
    assert np.abs(grad).max() > 0
    gpunet.GradientDescent(0.1).step(net)
    np.testing.assert_allclose(net.layers[0].w, before - 0.1 * grad, rtol=1e-6)


def test_shape_mismatch_names_both_shapes(numpy_backend):
    layer = Params(numpy_backend, [np.ones((2, 3))], [np.ones((3, 2))])
    for optimizer in [gpunet.GradientDescent(0.1), gpunet.Momentum(0.1)]:
        with pytest.raises(ValueError, match=r"shape \(2, 3\) but its gradient has shape \(3, 2\)"):
            optimizer.step(layer)


def test_count_mismatch(numpy_backend):
    layer = Params(numpy_backend, [np.ones(2), np.ones(2)], [np.ones(2)])
    with pytest.raises(ValueError, match="^Params has 2 parameters but 1 gradients$"):
        gpunet.GradientDescent().step(layer)


def test_momentum_refuses_a_different_model(numpy_backend):
    optimizer = gpunet.Momentum(0.1)
    optimizer.step(Params(numpy_backend, [np.ones(2)], [np.ones(2)]))
    with pytest.raises(ValueError, match=r"^Momentum was started on parameters of shapes "
                                         r"\[\(2,\)\], but this layer has \[\(3,\)\]: use a "
                                         r"new optimizer for a different model$"):
        optimizer.step(Params(numpy_backend, [np.ones(3)], [np.ones(3)]))


def test_the_notebooks_default_rates():
    assert gpunet.GradientDescent().lr == 0.1
    assert gpunet.Momentum(0.1).mo == 0.9


@pytest.mark.parametrize("make", [lambda: gpunet.GradientDescent(-0.1),
                                  lambda: gpunet.Momentum(0.1, 1.0),
                                  lambda: gpunet.Momentum(0.1, -0.5),
                                  lambda: gpunet.Momentum(float("nan"))])
def test_bad_hyperparameters(make):
    with pytest.raises(ValueError, match="must be in"):
        make()


@pytest.mark.parametrize("check, value, message", [
    (valid_learning_rate, -1, r"learning_rate must be in \[0, inf\), got -1.0"),
    (valid_momentum, 1, r"momentum must be in \[0, 1.0\), got 1.0")])
def test_bad_hyperparameters_are_named(check, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        check(value)

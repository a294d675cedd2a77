"""Sequentials within Sequentials: the outermost network holds every parameter and
gradient in one flat buffer each, every layer's arrays views of it, in order."""
import numpy as np

import gpunet
from gpunet import Linear, Relu, Sequential, Tanh


def test_nested_sequentials_keep_their_arrays_in_the_outer_buffers(numpy_backend):
    first, second, third = (Linear(4, 3, backend=numpy_backend), Linear(3, 2, backend=numpy_backend),
                            Linear(2, 1, backend=numpy_backend))
    values = [p.copy() for layer in (first, second, third) for p in layer.params()]
    inner = Sequential([first, Tanh(), second])
    model = Sequential([inner, Relu(), third])
    flat_params, flat_grads = model.flat()
    assert inner.flat() is None  # the outer buffers hold them now
    assert flat_params.shape == flat_grads.shape == (12 + 3 + 6 + 2 + 2 + 1,)
    np.testing.assert_array_equal(flat_params, np.concatenate([v.ravel() for v in values]))
    assert [p.shape for p in model.params()] == [(3, 4), (3,), (2, 3), (2,), (1, 2), (1,)]

    def check_views():
        offset = 0
        for layer in (first, second, third):
            for param, grad in zip(layer.params(), layer.grads(), strict=True):
                end = offset + param.size
                assert np.shares_memory(param, flat_params[offset:end])
                assert np.shares_memory(grad, flat_grads[offset:end])
                np.testing.assert_array_equal(param.ravel(), flat_params[offset:end])
                np.testing.assert_array_equal(grad.ravel(), flat_grads[offset:end])
                offset = end
        assert offset == flat_params.size

    check_views()
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 1))
    model.forward(x)
    model.backward(g)
    np.testing.assert_allclose(flat_grads[-1], g.sum(), rtol=1e-6)  # the last bias's, last
    check_views()
    before, grads = flat_params.copy(), flat_grads.copy()
    gpunet.GradientDescent(0.5).step(model)
    np.testing.assert_allclose(flat_params, before - 0.5 * grads, rtol=1e-6)
    check_views()


def test_a_sequential_that_adopted_its_own_arrays_still_trains(numpy_backend):
    """adopt hands a network's arrays to the buffers the views belong to; given
    views into its own buffers, the network's parameters still update."""
    model = Sequential([Linear(3, 2, backend=numpy_backend), Tanh(),
                        Linear(2, 2, backend=numpy_backend)])
    model.adopt(model.params(), model.grads())
    model.backward(model.forward(np.random.default_rng(0).standard_normal((4, 3))))
    before = [p.copy() for p in model.params()]
    grads = [g.copy() for g in model.grads()]
    gpunet.GradientDescent(0.5).step(model)
    for param, was, grad in zip(model.params(), before, grads, strict=True):
        np.testing.assert_allclose(param, was - 0.5 * grad, rtol=1e-6)


def test_layers_of_two_dtypes_keep_their_own_arrays(numpy_backend):
    """No flat buffer for float32 and float64 parameters together: each keeps its dtype."""
    model = gpunet.Sequential([gpunet.Linear(3, 2, backend=numpy_backend),
                               gpunet.Linear(2, 2, dtype="float64", backend=numpy_backend)])
    assert model.flat() is None
    assert [p.dtype for p in model.params()] == [np.float32] * 2 + [np.float64] * 2


class Scale(gpunet.Layer):
    """A user's layer with a parameter and no ``adopt``: it keeps its own arrays."""

    def __init__(self, n):
        self.s, self.g = np.ones(n, np.float32), np.zeros(n, np.float32)

    def forward(self, x):
        self.x = x
        return x * self.s

    def backward(self, gradient):
        self.g[...] = (gradient * self.x).sum(axis=0)
        return gradient * self.s

    def params(self):
        return [self.s]

    def grads(self):
        return [self.g]


def test_a_nested_network_with_a_layer_that_cannot_adopt_keeps_every_array(numpy_backend):
    inner = Sequential([Linear(3, 3, backend=numpy_backend), Scale(3)])
    model = Sequential([Linear(3, 3, backend=numpy_backend), Tanh(), inner])
    assert inner.flat() is None and model.flat() is None and not model.can_adopt()
    scale = inner.layers[1]
    assert model.params()[-1] is scale.s and model.grads()[-1] is scale.g
    x = np.ones((2, 3), np.float32)
    gpunet.train_epoch(model, gpunet.SSE(), gpunet.GradientDescent(0.1), x, x, batch_size=2)
    assert not np.array_equal(scale.s, np.ones(3, np.float32))  # it trained, in its own array

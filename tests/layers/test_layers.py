"""Layer behaviour: ranks, dtypes, in-place parameters, dropout modes, initialisation, errors."""
import re

import numpy as np
import pytest

import gpunet
from helpers.arrays import host


# Tolerance for float32 results summed in different orders: values here are O(1).
FLOAT32_SUMS = {"rtol": 1e-5, "atol": 1e-6}


def deep_model(backend, dtype=None):
    """The notebook's deep MNIST model, scaled down."""
    return gpunet.Sequential([
        gpunet.Linear(8, 6, dtype=dtype, backend=backend), gpunet.Dropout(0.1), gpunet.Tanh(),
        gpunet.Linear(6, 5, dtype=dtype, backend=backend), gpunet.Dropout(0.1), gpunet.Tanh(),
        gpunet.Linear(5, 4, dtype=dtype, backend=backend),
    ])


def test_batch_sample_and_list_inputs_keep_rank(backend):
    model = deep_model(backend)
    for dropout in model.layers[1::3]:
        dropout.train = False
    batch = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    out = model.forward(batch)
    assert out.shape == (3, 4)
    one = model.forward(batch[1])
    assert one.shape == (4,)
    # A one-row product may be summed in another order than the batch's (cuBLAS
    # picks its kernel by shape): float32 rounding of sums of 8 and 6 terms.
    np.testing.assert_allclose(host(backend, one), host(backend, out)[1], **FLOAT32_SUMS)
    from_list = model.forward(batch[1].tolist())
    np.testing.assert_allclose(host(backend, from_list), host(backend, one), **FLOAT32_SUMS)
    for dropout in model.layers[1::3]:
        dropout.train = True
    model.forward(batch[1])
    assert model.backward(np.ones(4)).shape == (8,)


def test_float32_is_preserved_through_forward_backward_and_step(backend):
    model = deep_model(backend)
    x = backend.asarray(np.random.default_rng(0).standard_normal((4, 8)))
    out = model.forward(x)
    loss = gpunet.SoftmaxCrossEntropy()
    y = gpunet.one_hot_encode([0, 1, 2, 3], 4, backend=backend)
    value, grad = loss.loss(out, y), loss.gradient(out, y)
    dx = model.backward(grad)
    for optimizer in [gpunet.GradientDescent(0.1), gpunet.Momentum(0.1, 0.9)]:
        optimizer.step(model)
    arrays = [out, value, grad, dx, *model.params(), *model.grads()]
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}


ACTIVATION_SLOPES = {  # f'(x) from x, independently of the layers' formulas from y
    gpunet.Sigmoid: lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2,
    gpunet.Tanh: lambda x: 1 / np.cosh(x) ** 2,
    gpunet.Relu: lambda x: (x > 0).astype(float),
}


@pytest.mark.parametrize("activation", list(ACTIVATION_SLOPES), ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("gradient_dtype", [np.float32, np.float64, "list"])
def test_activation_backward_keeps_float32_whatever_the_gradient(backend, activation,
                                                                  gradient_dtype):
    """A float32 activation returns a float32 input gradient for a float32,
    float64 or list gradient (no operation promotes float32), of value f'(x) dy."""
    x = np.array([[-2.0, -0.5, 0.25], [0.75, 1.5, 3.0]])
    dy = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.5]])
    layer = activation()
    layer.forward(backend.asarray(x, np.float32))
    given = dy.tolist() if gradient_dtype == "list" else backend.asarray(dy, gradient_dtype)
    dx = layer.backward(given)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(host(backend, dx), ACTIVATION_SLOPES[activation](x) * dy,
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("gradient_dtype", [np.float32, np.float64, "list"])
def test_linear_backward_keeps_float32_whatever_the_gradient(backend, gradient_dtype):
    """A float32 Linear returns a float32 input gradient, of value dy W, for a
    float32, float64 or list gradient."""
    layer = gpunet.Linear(3, 2, backend=backend)
    layer.forward(backend.asarray([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], np.float32))
    dy = np.array([[1.0, -2.0], [0.5, 3.0]])
    given = dy.tolist() if gradient_dtype == "list" else backend.asarray(dy, gradient_dtype)
    dx = layer.backward(given)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(host(backend, dx), dy @ host(backend, layer.w), rtol=1e-6)


def test_float64_option(backend):
    model = deep_model(backend, dtype="float64")
    out = model.forward(np.ones((2, 8), np.float32))
    assert out.dtype == np.float64
    assert {p.dtype for p in model.params()} == {np.dtype(np.float64)}


def test_parameters_are_updated_in_place(backend):
    model = deep_model(backend)
    before = [id(p) for p in model.params()]
    expected = [host(backend, p).astype(np.float64) for p in model.params()]
    velocity = [np.zeros_like(p) for p in expected]
    optimizer = gpunet.Momentum(0.1, 0.9)
    for _ in range(3):
        model.backward(model.forward(np.ones((2, 8))))
        for v, p, g in zip(velocity, expected, model.grads()):  # the notebook's momentum
            v *= 0.9
            v += 0.1 * host(backend, g)
            p -= 0.1 * v
        optimizer.step(model)
        for p, actual in zip(expected, model.params()):
            np.testing.assert_allclose(host(backend, actual), p, rtol=1e-5, atol=1e-7)
    assert [id(p) for p in model.params()] == before
    assert all(np.abs(v).max() > 0 for v in velocity)  # every parameter moved


def test_linear_layout_and_maths(numpy_backend):
    layer = gpunet.Linear(3, 2, backend=numpy_backend)
    assert layer.w.shape == (2, 3) and layer.b.shape == (2,)
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_allclose(layer.forward(x), x @ layer.w.T + layer.b, rtol=1e-6)
    g = np.array([[1.0, -1.0]], np.float32)
    dx = layer.backward(g)
    np.testing.assert_allclose(layer.w_grad, g.T @ x)
    np.testing.assert_allclose(layer.b_grad, g[0])
    np.testing.assert_allclose(dx, g @ layer.w, rtol=1e-6)


def test_dropout_notebook_mode(numpy_backend):
    gpunet.seed(0)
    layer = gpunet.Dropout(0.25)
    x = np.ones((200, 50), np.float32)
    out = layer.forward(x)
    assert set(np.unique(out)) == {0.0, 1.0}
    assert abs((out == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(layer.backward(np.full_like(x, 3.0)), 3 * out)
    layer.train = False
    np.testing.assert_allclose(layer.forward(x), 0.75)


def test_dropout_inverted_mode(numpy_backend):
    layer = gpunet.Dropout(0.25, inverted=True)
    x = np.ones((200, 50), np.float32)
    out = layer.forward(x)
    np.testing.assert_allclose(np.unique(out), [0.0, 4 / 3], rtol=1e-6)
    assert out.dtype == np.float32
    layer.train = False
    np.testing.assert_array_equal(layer.forward(x), x)


def test_dropout_masks_repeat_with_the_seed(numpy_backend):
    x = np.ones((10, 10), np.float32)
    gpunet.seed(3)
    first = gpunet.Dropout(0.5).forward(x)
    gpunet.seed(3)
    np.testing.assert_array_equal(gpunet.Dropout(0.5).forward(x), first)


@pytest.mark.parametrize("gradient_dtype", [np.float32, np.float64, "list"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_backward_keeps_the_forward_dtype(backend, dtype, gradient_dtype):
    """dx = dy * mask in the dtype of the forward pass, whatever the gradient's:
    a float64 gradient does not promote float32, a list does not round float64."""
    layer = gpunet.Dropout(0.5)
    mask = layer.forward(backend.asarray(np.ones((4, 5)), dtype))  # x = 1: the output is the mask
    dy = np.arange(1, 21).reshape(4, 5) / 3  # thirds: float32 rounds them, float64 less so
    if gradient_dtype != "list":  # a list holds Python floats: dy's float64 values
        dy = dy.astype(gradient_dtype)
    given = dy.tolist() if gradient_dtype == "list" else backend.asarray(dy)
    dx = layer.backward(given)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(host(backend, dx), host(backend, mask) * dy.astype(dtype))


@pytest.mark.parametrize("init, sd_w, sd_b", [
    ("xavier", 2 / 300, 1 / 100),                    # the notebook's: sd = variance
    ("glorot", np.sqrt(2 / 300), np.sqrt(1 / 100)),  # the textbook's: sd = sqrt(variance)
    ("normal", 1.0, 1.0),
])
def test_normal_inits(numpy_backend, init, sd_w, sd_b):
    layer = gpunet.Linear(200, 100, init, backend=numpy_backend)
    assert abs(layer.w.std() / sd_w - 1) < 0.03
    assert abs(layer.b.std() / sd_b - 1) < 0.3
    assert abs(layer.w.mean()) < 0.05 * sd_w


def test_uniform_init(numpy_backend):
    layer = gpunet.Linear(200, 100, "uniform", backend=numpy_backend)
    assert 0 <= layer.w.min() and layer.w.max() < 1 and abs(layer.w.mean() - 0.5) < 0.01


def test_same_seed_same_weights_and_dropout_does_not_shift_them(numpy_backend):
    gpunet.seed(11)
    a = gpunet.Linear(4, 3, backend=numpy_backend)
    gpunet.seed(11)
    gpunet.Dropout(0.5).forward(np.ones(100))
    b = gpunet.Linear(4, 3, backend=numpy_backend)
    np.testing.assert_array_equal(a.w, b.w)


# -- errors ------------------------------------------------------------------

def test_linear_rejects_wrong_input_shape(numpy_backend):
    layer = gpunet.Linear(3, 2, backend=numpy_backend)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3\) or \(3,\), got shape \(4, 5\)"):
        layer.forward(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 3\)"):
        layer.forward(np.ones((2, 2, 3)))


def test_backward_gradient_shape_is_checked(numpy_backend):
    layer = gpunet.Linear(3, 2, backend=numpy_backend)
    layer.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"gradient shape \(4, 3\) does not match output shape \(4, 2\)"):
        layer.backward(np.ones((4, 3)))
    for act in [gpunet.Sigmoid(), gpunet.Dropout(0.5)]:
        act.forward(np.ones((4, 2)))
        with pytest.raises(ValueError, match=rf"^{type(act).__name__}\.backward: gradient shape "
                                             r"\(2, 4\) does not match output shape \(4, 2\)$"):
            act.backward(np.ones((2, 4)))


@pytest.mark.parametrize("layer", [gpunet.Linear(2, 2, backend="numpy"), gpunet.Sigmoid(),
                                   gpunet.Tanh(), gpunet.Relu(), gpunet.Dropout(0.5),
                                   gpunet.Sequential([gpunet.Tanh()])],
                         ids=repr)
def test_backward_before_forward(layer):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones(2))


@pytest.mark.parametrize("make", [gpunet.Sigmoid, gpunet.Tanh, gpunet.Relu,
                                  lambda: gpunet.Linear(2, 2, backend="numpy")])
def test_a_new_layer_has_nothing_to_differentiate(make):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        make().backward(np.ones(2))


def test_dropout_backward_in_evaluation_mode():
    layer = gpunet.Dropout(0.5)
    layer.forward(np.ones(3))
    layer.train = False
    with pytest.raises(RuntimeError, match=r"^Dropout\.backward called in evaluation mode "
                                           r"\(train=False\): set train = True before the "
                                           r"forward pass you differentiate$"):
        layer.backward(np.ones(3))


def test_unknown_init_lists_valid_ones():
    with pytest.raises(ValueError, match="'he'.*xavier, glorot, normal, uniform"):
        gpunet.Linear(2, 2, init="he")


@pytest.mark.parametrize("dims", [(0, 2), (2, -1), (2.5, 2)])
def test_bad_dimensions(dims):
    with pytest.raises(ValueError, match="dimensions must be positive integers"):
        gpunet.Linear(*dims)


def test_bad_dtype_and_dropout_probability():
    for dtype in ["int32", "float16"]:
        with pytest.raises(ValueError, match=f"must be float32 or float64, got {dtype}"):
            gpunet.Linear(2, 2, dtype=dtype)
    for p in [-0.1, 1.0, 2, "0.1", None, True, float("nan")]:
        with pytest.raises(ValueError, match=r"^Dropout probability p must be a number in "
                                             rf"\[0, 1\), got {re.escape(repr(p))}$"):
            gpunet.Dropout(p)


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match="item 1 is ufunc, not a Layer"):
        gpunet.Sequential([gpunet.Tanh(), np.tanh])


def test_reprs():
    model = gpunet.Sequential([gpunet.Linear(3, 2, backend="numpy"), gpunet.Sigmoid(),
                               gpunet.Tanh(), gpunet.Relu(), gpunet.Dropout(0.25),
                               gpunet.Sequential([gpunet.Dropout(0.5, inverted=True)]),
                               gpunet.Sequential([])])
    assert repr(model) == ("Sequential([Linear(3, 2, dtype=float32), Sigmoid(), Tanh(), Relu(), "
                           "Dropout(0.25, inverted=False), "
                           "Sequential([Dropout(0.5, inverted=True)]), Sequential([])])")


def test_a_layer_without_adopt_refuses_parameters():
    gpunet.Tanh().adopt([], [])  # nothing to keep: nothing to do
    for params, grads in [([np.ones(2)], []), ([np.ones(2)], [np.zeros(2)])]:
        with pytest.raises(NotImplementedError, match=r"^Relu has parameters but no adopt\(\)$"):
            gpunet.Relu().adopt(params, grads)


@pytest.mark.parametrize("first", [gpunet.Sigmoid, gpunet.Tanh, gpunet.Relu,
                                   lambda: gpunet.Dropout(0.5)], ids=lambda make: repr(make()))
def test_backward_to_params_through_a_first_layer_without_parameters(numpy_backend, first):
    """A network's first layer that has no backward_to_params of its own
    differentiates the gradient it is given (its shape checked), and the
    parameter gradients are those of backward."""
    model = gpunet.Sequential([first(), gpunet.Linear(3, 2, backend=numpy_backend)])
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    gpunet.seed(5)
    model.forward(x)
    model.backward(g)
    expected = [grad.copy() for grad in model.grads()]
    for grad in model.grads():
        grad[...] = 0
    gpunet.seed(5)
    model.forward(x)
    assert model.backward_to_params(g) is None
    for grad, want in zip(model.grads(), expected):
        np.testing.assert_array_equal(grad, want)
    first_layer = model.layers[0]
    assert first_layer.backward_to_params(np.ones((4, 3))) is None
    with pytest.raises(ValueError, match=rf"^{type(first_layer).__name__}\.backward: gradient "
                                         r"shape \(4, 2\) does not match output shape \(4, 3\)$"):
        first_layer.backward_to_params(g)


def test_dropout_after_an_evaluation_pass_has_nothing_to_differentiate():
    layer = gpunet.Dropout(0.5)
    layer.train = False
    layer.forward(np.ones(3))
    layer.train = True
    with pytest.raises(RuntimeError, match=r"^Dropout\.backward called before forward: there is "
                                           r"no saved forward pass to differentiate$"):
        layer.backward(np.ones(3))
    with pytest.raises(RuntimeError, match=r"^Dropout\.backward called before forward"):
        gpunet.Dropout(0.5).backward(np.ones(3))

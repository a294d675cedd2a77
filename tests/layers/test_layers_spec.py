"""Architectures as data: build makes exactly the layers a description says, on the
backend and in the dtype it is asked for, and refuses probabilities outside [0, 1)."""
import re

import numpy as np
import pytest

import gpunet
from gpunet.checkpoint import load_checkpoint, save_checkpoint

SPEC = {"layer": "Sequential", "layers": [
    {"layer": "Sequential", "layers": [
        {"layer": "Linear", "input_dim": 4, "output_dim": 3, "init": "uniform"},
        {"layer": "Dropout", "p": 0.25, "inverted": True}, {"layer": "Relu"}]},
    {"layer": "Linear", "input_dim": 3, "output_dim": 2, "init": "normal"},
    {"layer": "Dropout", "p": 0.0, "inverted": False}, {"layer": "Sigmoid"}, {"layer": "Tanh"}]}


def linears(model):
    inner, second = model.layers[0].layers[0], model.layers[1]
    assert isinstance(inner, gpunet.Linear) and isinstance(second, gpunet.Linear)
    return inner, second


def test_build_makes_what_describe_says(numpy_backend):
    model = gpunet.build(SPEC, backend=numpy_backend)
    assert gpunet.describe(model) == SPEC
    assert repr(model) == ("Sequential([Sequential([Linear(4, 3, dtype=float32), "
                           "Dropout(0.25, inverted=True), Relu()]), Linear(3, 2, dtype=float32), "
                           "Dropout(0.0, inverted=False), Sigmoid(), Tanh()])")
    uniform, _ = linears(model)
    assert 0 <= uniform.w.min() and uniform.w.max() <= 1  # drawn by the init described
    model.layers[0].layers[1].train = False
    np.testing.assert_array_equal(model.layers[0].layers[1].forward(np.ones(3)), np.ones(3))


@pytest.mark.parametrize("dtype", [None, "float32", np.float64])
def test_build_makes_parameters_of_the_dtype_asked_for(numpy_backend, dtype):
    model = gpunet.build(SPEC, backend=numpy_backend, dtype=dtype)
    expected = np.dtype(np.float32 if dtype is None else dtype)
    assert [p.dtype for p in model.params()] == [expected] * 4
    assert [g.dtype for g in model.grads()] == [expected] * 4
    assert model.forward(np.ones((2, 4), np.float32)).dtype == expected


def test_build_uses_the_backend_it_is_given_whatever_gpunet_backend_says(numpy_backend,
                                                                         monkeypatch):
    monkeypatch.setenv("GPUNET_BACKEND", "cupy")  # on a machine without CUDA, unusable
    model = gpunet.build(SPEC, backend=numpy_backend)
    assert [layer.backend for layer in linears(model)] == [numpy_backend] * 2
    assert all(type(p) is np.ndarray for p in model.params() + model.grads())


def test_a_float64_model_round_trips_through_a_checkpoint_exactly(numpy_backend, tmp_path):
    model = gpunet.build(SPEC, backend=numpy_backend, dtype=np.float64)
    save_checkpoint(tmp_path / "a.ckpt", model, gpunet.GradientDescent(0.1), epoch=0, seed=0)
    loaded = load_checkpoint(tmp_path / "a.ckpt", numpy_backend).model
    assert gpunet.describe(loaded) == SPEC
    for param, got in zip(model.params(), loaded.params(), strict=True):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, param)


def test_a_dropout_probability_of_0_is_built(numpy_backend):
    layer = gpunet.build({"layer": "Dropout", "p": 0, "inverted": False}, backend=numpy_backend)
    assert repr(layer) == "Dropout(0.0, inverted=False)"
    np.testing.assert_array_equal(layer.forward(np.arange(5.0)), np.arange(5.0))


@pytest.mark.parametrize("p", [1, 1.0, 1.5, -0.01])
def test_a_dropout_probability_outside_0_1_is_refused(numpy_backend, p):
    with pytest.raises(ValueError, match=rf"^p must be a number in \[0, 1\), got "
                                         rf"{re.escape(repr(p))}$"):
        gpunet.build({"layer": "Dropout", "p": p, "inverted": False}, backend=numpy_backend)


def test_a_linear_layer_of_one_unit_is_built(numpy_backend):
    layer = gpunet.build({"layer": "Linear", "input_dim": 1, "output_dim": 1, "init": "xavier"},
                         backend=numpy_backend)
    assert [p.shape for p in layer.params()] == [(1, 1), (1,)]


def test_what_is_not_a_layer_description_is_named():
    with pytest.raises(ValueError, match=r"^a layer description must be a dict whose 'layer' is "
                                         r"one of Sequential, Linear, Dropout, Sigmoid, Tanh, "
                                         r"Relu, LeakyRelu, got \[1, 2\]$"):
        gpunet.build([1, 2], backend="numpy")


def test_describe_names_a_layer_it_does_not_know():
    class Custom(gpunet.Layer):
        pass
    with pytest.raises(ValueError, match=r"^cannot describe a Custom: known layers are "
                                         r"Sequential, Linear, Dropout, Sigmoid, Tanh, Relu, "
                                         r"LeakyRelu$"):
        gpunet.describe(Custom())

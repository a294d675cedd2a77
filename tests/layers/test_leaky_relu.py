"""LeakyRelu(alpha), the activation added through the table of activations
(docs/extending.md): the layer and its scalar, its spec, its checkpoint, the
notebook peer's formula. Its kernels are compiled by tests/backend/test_nvrtc.py and
run on the host by tests/backend/test_kernels_on_host.py (both over every kernel and
every activation); its gradient is checked in tests/layers/test_gradients.py; planned
= eager and graph = planned in tests/planning/test_planning.py and tests/planning/test_graph.py
("leaky-relu-dropout")."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import gpunet
from gpunet.backend.activations import ACTIVATIONS, ActivationCall
from gpunet.bench.peer_notebook import Activation as NotebookActivation
from gpunet.checkpoint import load_checkpoint, save_checkpoint
from gpunet.planning.stages import dense_stages

X = [-3.0, -0.5, -0.0, 0.0, 0.25, 2.0, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_it_is_x_above_zero_and_alpha_x_below_in_the_inputs_dtype(numpy_backend, dtype):
    layer = gpunet.LeakyRelu(0.2)
    y = layer.forward(numpy_backend.asarray(X, dtype))
    alpha = dtype(0.2)
    expected = np.array([alpha * dtype(-3.0), alpha * dtype(-0.5), -0.0, 0.0, 0.25, 2.0,
                         math.inf, -math.inf, math.nan], dtype)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, expected)
    assert np.signbit(y[2]) and not np.signbit(y[3])
    gx = layer.backward(np.full(len(X), 3.0, dtype))
    np.testing.assert_array_equal(gx, [alpha * 3] * 4 + [3.0, 3.0, 3.0, alpha * 3, alpha * 3])


def test_alpha_defaults_to_0_01_and_zero_is_relu(numpy_backend):
    assert repr(gpunet.LeakyRelu()) == "LeakyRelu(alpha=0.01)"
    x = numpy_backend.asarray(np.linspace(-2, 2, 41))
    np.testing.assert_array_equal(gpunet.LeakyRelu(0).forward(x), gpunet.Relu().forward(x))


@pytest.mark.parametrize("alpha", [-0.1, math.nan, math.inf, True, "0.1", None])
def test_an_alpha_that_is_not_a_finite_number_at_least_0_is_refused(alpha):
    with pytest.raises(ValueError, match=r"^LeakyRelu's alpha must be a finite number >= 0, "):
        gpunet.LeakyRelu(alpha)


def test_its_description_carries_alpha_and_builds_it_back(numpy_backend):
    model = gpunet.Sequential([gpunet.Linear(4, 3, backend=numpy_backend), gpunet.LeakyRelu(0.3)])
    spec = json.loads(json.dumps(gpunet.describe(model)))
    assert spec["layers"][1] == {"layer": "LeakyRelu", "alpha": 0.3}
    rebuilt = gpunet.build(spec, backend=numpy_backend)
    assert repr(rebuilt.layers[1]) == "LeakyRelu(alpha=0.3)"


@pytest.mark.parametrize("spec, message", [
    ({"layer": "LeakyRelu"}, r"a LeakyRelu description has the keys \['alpha'\], got \[\]"),
    ({"layer": "LeakyRelu", "alpha": -1}, r"alpha must be a finite number >= 0, got -1"),
    ({"layer": "Relu", "alpha": 0.1}, r"a Relu description has the keys \[\], got \['alpha'\]"),
])
def test_a_bad_description_is_refused_naming_the_key(numpy_backend, spec, message):
    with pytest.raises(ValueError, match=message):
        gpunet.build(spec, backend=numpy_backend)


def test_a_checkpoint_keeps_alpha_and_the_numbers(numpy_backend, tmp_path):
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(4, 5, backend=numpy_backend), gpunet.LeakyRelu(0.25),
                               gpunet.Linear(5, 3, backend=numpy_backend)])
    optimizer = gpunet.Momentum(0.1, 0.9)
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    model.backward(model.forward(x))
    optimizer.step(model)
    path = save_checkpoint(tmp_path / "leaky.ckpt", model, optimizer, epoch=1, seed=0)
    loaded = load_checkpoint(path, numpy_backend).model
    assert gpunet.describe(loaded) == gpunet.describe(model)
    assert repr(loaded.layers[1]) == "LeakyRelu(alpha=0.25)"
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_a_planned_stage_applies_it_with_its_alpha(numpy_backend):
    model = gpunet.Sequential([gpunet.Linear(4, 5, backend=numpy_backend), gpunet.LeakyRelu(0.5),
                               gpunet.Linear(5, 3, backend=numpy_backend)])
    first, _ = dense_stages(model)
    assert first.activation == ActivationCall("leaky_relu", (0.5,))


def test_the_notebook_peer_takes_its_scalar_formula_and_alpha():
    peer = NotebookActivation({"layer": "LeakyRelu", "alpha": 0.2})
    assert peer.forward([-2.0, 0.0, 3.0]) == [-0.4, 0.0, 3.0]
    assert peer.backward([1.0, 1.0, 1.0]) == [0.2, 0.2, 1.0]


def test_every_activation_of_the_table_has_one_layer_class():
    from gpunet.layers.activations import ACTIVATION_LAYERS
    assert sorted(cls.function for cls in ACTIVATION_LAYERS.values()) == sorted(ACTIVATIONS)
    assert all(ACTIVATIONS[cls.function].layer == name for name, cls in ACTIVATION_LAYERS.items())
    assert all(getattr(gpunet, name) is cls for name, cls in ACTIVATION_LAYERS.items())

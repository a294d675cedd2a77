"""The NumPy backend's host replay (``host_replay.py``): the deep model's step
replayed as C stages and NumPy calls bound once, with none of the backend's
operations left, bit for bit the planned step at the batch sizes people use;
what the C does not cover replayed as recorded. (``tests/planning/test_graph.py``
runs every model through it against the planned step.)"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import gpunet
from gpunet.backend import host_c, host_replay
from gpunet.bench.trainers import mnist_like
from gpunet.planning import graph as graphs
from helpers.models import model_of

if isinstance(_reason := host_c.library(), str):
    pytest.skip(f"no host replay: {_reason}", allow_module_level=True)


def epochs(backend, name, batch, graph, samples, *, epochs=2, writeable=True, dtype=None):
    """(parameters and each epoch's loss, the model) after ``epochs`` shuffled epochs."""
    gpunet.seed(5)
    model = model_of(name, backend, dtype)
    optimizer = gpunet.Momentum(0.05, 0.9)
    x, labels = mnist_like(samples)
    y = gpunet.one_hot_encode(labels, backend=backend)
    x.flags.writeable = y.flags.writeable = writeable
    losses = [float(gpunet.train_epoch(model, gpunet.SoftmaxCrossEntropy(), optimizer, x, y,
                                       batch, shuffle=True, graph=graph))
              for _ in range(epochs)]
    return [p.copy() for p in model.params()] + [np.array(losses)], model


def same(first, second) -> None:
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch, samples", [(1, 40), (128, 640)])
def test_the_deep_models_replay_is_the_planned_step_bit_for_bit(numpy_backend, batch, samples):
    replayed, model = epochs(numpy_backend, "deep", batch, "auto", samples)
    assert graphs._GRAPHS[model].path == "graph (host)"
    same(replayed, epochs(numpy_backend, "deep", batch, "off", samples)[0])


def test_the_deep_models_replay_calls_no_backend_operation(numpy_backend):
    """Every call of the captured step is a C stage, a NumPy function or a
    product reading the batch's rows: no operation of the backend's is left."""
    _, model = epochs(numpy_backend, "deep", 16, "on", 64, epochs=1)
    replay = graphs._GRAPHS[model].replay
    assert isinstance(replay, host_replay.BoundReplay)
    functions = [call.func if isinstance(call, functools.partial) else call
                 for call in replay.calls]
    assert not [f for f in functions if getattr(f, "__self__", None) is numpy_backend]
    lib = host_c.library()
    stages = [getattr(lib, name) for name in host_c.SIGNATURES]
    c_calls = [f for f in functions if any(f is stage for stage in stages)]
    assert len(c_calls) == 2 + 2 + 2 + 1  # two dense stages each way, the output, the update


def replayed_functions(model) -> list:
    return [call.func for call in graphs._GRAPHS[model].replay.calls
            if isinstance(call, functools.partial)]


@pytest.mark.parametrize("name", ["sigmoid-inverted", "relu-dropout", "leaky-relu-dropout"])
def test_every_activations_dense_stages_are_c(numpy_backend, name):
    """Sigmoid, relu and leaky relu stages as tanh's: C both ways (their forward
    formulas NumPy's, bound), no recorded operation, the planned step's numbers."""
    replayed, model = epochs(numpy_backend, name, 16, "on", 64)
    functions = replayed_functions(model)
    assert not [f for f in functions if getattr(f, "__self__", None) is numpy_backend]
    lib = host_c.library()
    stages = sum(layer.__class__.__name__ == "Linear" for layer in model.layers)
    assert functions.count(lib.dense_forward) == functions.count(lib.dense_backward) == stages - 1
    same(replayed, epochs(numpy_backend, name, 16, "off", 64)[0])


def test_what_the_c_does_not_cover_is_replayed_as_recorded(numpy_backend):
    """A float64 model: every operation is the recorded one, bound, with the
    planned step's numbers."""
    replayed, model = epochs(numpy_backend, "deep", 16, "on", 64, dtype=np.float64)
    functions = replayed_functions(model)
    recorded = [f.__name__ for f in functions if getattr(f, "__self__", None) is numpy_backend]
    assert {"dense_forward", "dense_backward", "dense_softmax_cross_entropy",
            "update_and_advance"} <= set(recorded)
    lib = host_c.library()
    assert not [f for f in functions if any(f is getattr(lib, name) for name in host_c.SIGNATURES)]
    same(replayed, epochs(numpy_backend, "deep", 16, "off", 64, dtype=np.float64)[0])


def test_read_only_data_replays_with_the_same_numbers(numpy_backend):
    replayed, _ = epochs(numpy_backend, "deep", 16, "on", 64, writeable=False)
    same(replayed, epochs(numpy_backend, "deep", 16, "off", 64)[0])

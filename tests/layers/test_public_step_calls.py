"""The host work of a step through the public API (issue #23, item 10): the
deep model's forward, loss, backward and update on the NumPy backend make at
most MOST_CALLS Python calls (``sys.setprofile``'s "call" events), so the
layers' checks and conversions stay off the hot path."""
import sys

import numpy as np
import pytest

import gpunet
from helpers.mutation import counts_python_calls

MOST_CALLS = 95  # 87 (batch 1) and 90 (batch 128) on Python 3.11 when written, 162 and 171 before


def public_step(model, loss, optimizer, x, y):
    mean, gradient = loss.loss_and_gradient(model.forward(x), y)
    model.backward_to_params(gradient)
    optimizer.step(model)
    return mean


def count_calls(run) -> int:
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        calls += event == "call"

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


@counts_python_calls
@pytest.mark.parametrize("batch_size", [1, 128])
def test_a_public_deep_model_step_makes_few_python_calls(batch_size):
    backend = gpunet.get_backend("numpy")
    gpunet.seed(0)
    model = gpunet.mnist_model("deep", backend=backend)
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
    x = np.zeros((batch_size, 784), np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(batch_size) % 10]
    public_step(model, loss, optimizer, x, y)  # the first step makes the optimizer's state
    calls = count_calls(lambda: public_step(model, loss, optimizer, x, y))
    assert calls <= MOST_CALLS, calls

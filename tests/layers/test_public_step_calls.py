"""The host work of a step through the public API (issue #23, item 10): the
deep model's forward, loss, backward and update on the NumPy backend make at
most MOST_CALLS Python calls (``sys.setprofile``'s "call" events), so the
layers' checks and conversions stay off the hot path: with the backend's C
(``host_operations.py``), and without it, where each operation it covers
passes through one more call on its way to NumPy's."""
import sys

import numpy as np
import pytest

import gpunet
from gpunet.backend import host_c
from helpers.mutation import counts_python_calls

# By host C on or off: 84 and 87 with it (batch 1, 128), 94 and 97 without, on Python 3.11
# when written (91 and 94 before the C); 162 and 171 before the layers' checks left the hot path;
# 89 at batch 128 with host_gemm.c's products (its call for each of the two large ones).
MOST_CALLS = {True: 90, False: 100}


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
@pytest.mark.parametrize("with_c", [True, False], ids=["host-c", "numpy-only"])
@pytest.mark.parametrize("batch_size", [1, 128])
def test_a_public_deep_model_step_makes_few_python_calls(batch_size, with_c, monkeypatch):
    if with_c and isinstance(reason := host_c.library(), str):
        pytest.skip(f"no host C: {reason}")
    backend = gpunet.get_backend("numpy")
    monkeypatch.setattr(backend, "host_c_on", with_c)
    gpunet.seed(0)
    model = gpunet.mnist_model("deep", backend=backend)
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
    x = np.zeros((batch_size, 784), np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(batch_size) % 10]
    public_step(model, loss, optimizer, x, y)  # the first step makes the optimizer's state
    calls = count_calls(lambda: public_step(model, loss, optimizer, x, y))
    assert calls <= MOST_CALLS[with_c], calls

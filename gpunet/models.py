"""The MNIST models: the notebook's two, and a wider MLP."""
from __future__ import annotations

from typing import Any

from .backend import Backend
from .layers import Dropout, Layer, Linear, Relu, Sequential, Tanh

PRESETS = ("logistic", "deep", "wide")
NOTEBOOK_RATES = (0.01, 0.99)  # the notebook's momentum optimizer, one sample a step
MINI_BATCH_RATES = {"logistic": (0.1, 0.9), "deep": (0.5, 0.9), "wide": (0.1, 0.9)}


def default_rates(name: str, batch_size: int) -> tuple[float, float]:
    """(learning rate, momentum) that train preset ``name`` well: the notebook's at
    batch size 1; at mini-batch sizes (mean loss over the batch) larger steps."""
    return NOTEBOOK_RATES if batch_size == 1 else MINI_BATCH_RATES[name]


def mnist_model(name: str, *, backend: Backend, dtype: Any = None) -> Layer:
    """'logistic': 784 -> 10 (softmax in the loss), the notebook's logistic regression;
    'deep': 784 -> 30 -> 10 -> 10 with dropout 0.1 and tanh, the notebook's deep model;
    'wide': 784 -> 256 -> 128 -> 10 with relu and textbook Glorot initialisation."""
    def linear(n_in: int, n_out: int, init: str = "xavier") -> Linear:
        return Linear(n_in, n_out, init, dtype=dtype, backend=backend)

    if name == "logistic":
        return Sequential([linear(784, 10)])
    if name == "deep":
        return Sequential([linear(784, 30), Dropout(0.1), Tanh(),
                           linear(30, 10), Dropout(0.1), Tanh(),
                           linear(10, 10)])
    if name == "wide":
        return Sequential([linear(784, 256, "glorot"), Relu(),
                           linear(256, 128, "glorot"), Relu(),
                           linear(128, 10, "glorot")])
    raise ValueError(f"unknown model {name!r}; valid models: {', '.join(PRESETS)}")

"""gpunet's preset as the peers rebuild it, and the data they train on.

Each peer rebuilds gpunet's own model, layer by layer, from the same initial
parameters, so each runs exactly gpunet's model.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import seeding
from ..backend import get_backend
from ..layers import describe
from ..models import mnist_model


def gpunet_model(model: str, seed: int = 0) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """gpunet's preset ``model`` seeded with ``seed`` (ValueError naming the valid
    presets for an unknown name): its layers as ``gpunet.layers.describe`` gives
    them, and its initial parameters [w, b of each Linear, in order] as float32
    host arrays, w of shape (out, in)."""
    seeding.seed(seed)
    net = mnist_model(model, backend=get_backend("numpy"))
    return describe(net)["layers"], [np.array(p, dtype=np.float32) for p in net.params()]


def check_data(x: np.ndarray, y: np.ndarray) -> None:
    """ValueError unless x is (N, 784) with N >= 1 and y (N,), as the peers train on."""
    if x.ndim != 2 or x.shape[1] != 784 or len(x) == 0 or y.shape != (len(x),):
        raise ValueError(f"need x (N, 784) with N >= 1 and labels y (N,), "
                         f"got shapes {x.shape} and {y.shape}")

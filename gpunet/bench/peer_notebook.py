"""The notebook's way as a peer: pure Python on lists, one sample a step.

The notebook's algorithm, written as plainly as the notebook writes it: each
Linear keeps w[o][i] and b[o] as lists, its backward forms the full gradient
of w and the gradient of its input (the first layer's too, as the notebook's
Sequential does), activations (their scalar formulas in
``gpunet/backend/activations.py``) and dropout go element by element through
``math`` and ``random``, and the momentum step walks every parameter:
u <- mo u + (1 - mo) g, p <- p - lr u. It is far too slow to run an epoch,
so ``notebook_samples_per_second`` runs it for a time budget and extrapolates.
"""
from __future__ import annotations

import math
import random
import time
from typing import Any

import numpy as np

from ..backend.activations import ACTIVATIONS, by_layer
from ..models import NOTEBOOK_RATES

from .peer_model import check_data, gpunet_model

SAMPLES_IN_LISTS = 1000  # samples converted to lists (~25 KB each), cycled over


class Linear:
    """y[o] = sum_i w[o][i] x[i] + b[o]."""

    def __init__(self, w: np.ndarray, b: np.ndarray) -> None:
        self.w, self.b = w.tolist(), b.tolist()
        self.w_update = [[0.0] * len(row) for row in self.w]
        self.b_update = [0.0] * len(self.b)

    def forward(self, x: list[float]) -> list[float]:
        self.x = x
        return [sum(xi * wi for xi, wi in zip(x, row)) + bo for row, bo in zip(self.w, self.b)]

    def backward(self, g: list[float]) -> list[float]:
        """dw[o][i] = g[o] x[i], db = g; returns dx[i] = sum_o w[o][i] g[o]."""
        self.w_grad = [[go * xi for xi in self.x] for go in g]
        self.b_grad = g
        return [sum(row[i] * go for row, go in zip(self.w, g)) for i in range(len(self.x))]

    def momentum_step(self, lr: float, mo: float) -> None:
        """u <- mo u + (1 - mo) g, then p <- p - lr u, for w and b element by element."""
        rows = zip(self.w + [self.b], self.w_update + [self.b_update], self.w_grad + [self.b_grad])
        for param, update, grad in rows:
            update[:] = [mo * u + (1 - mo) * g for u, g in zip(update, grad)]
            param[:] = [p - lr * u for p, u in zip(param, update)]


class Activation:
    """y = f(x) elementwise; dx = f'(x) dy, with f' written in terms of y: the
    scalar formulas of gpunet's table of activations, with the layer's scalars."""

    def __init__(self, spec: dict[str, Any]) -> None:
        formulas = ACTIVATIONS[by_layer(spec["layer"])]
        self.f, self.slope = formulas.scalar, formulas.scalar_slope
        self.scalars = [spec[key] for key in formulas.params]

    def forward(self, x: list[float]) -> list[float]:
        self.y = [self.f(v, *self.scalars) for v in x]
        return self.y

    def backward(self, g: list[float]) -> list[float]:
        return [gi * self.slope(yi, *self.scalars) for gi, yi in zip(g, self.y)]


class Dropout:
    """The notebook's: each input is zeroed with probability p, the rest pass unscaled."""

    def __init__(self, p: float, rng: random.Random) -> None:
        self.p, self.rng = p, rng

    def forward(self, x: list[float]) -> list[float]:
        self.mask = [0.0 if self.rng.random() < self.p else 1.0 for _ in x]
        return [v * m for v, m in zip(x, self.mask)]

    def backward(self, g: list[float]) -> list[float]:
        return [gi * m for gi, m in zip(g, self.mask)]


class NotebookNet:
    """gpunet's preset ``model`` with gpunet's initial values (seed ``seed``) as
    the notebook's layers; dropout masks come from random.Random(seed), drawn
    layer by layer, element by element."""

    def __init__(self, model: str, seed: int = 0) -> None:
        specs, params = gpunet_model(model, seed)
        values, rng = iter(params), random.Random(seed)
        self.layers: list[Linear | Activation | Dropout] = []
        for spec in specs:
            kind = spec["layer"]
            if kind == "Linear":
                self.layers.append(Linear(next(values), next(values)))
            elif kind == "Dropout":
                self.layers.append(Dropout(spec["p"], rng))
            else:
                self.layers.append(Activation(spec))

    def forward(self, x: list[float]) -> list[float]:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def train_sample(self, x: list[float], label: int) -> float:
        """One step of the notebook's loop: forward, softmax cross-entropy
        L = -log p[label] with p = softmax(z), backward from dL/dz = p - onehot(label),
        momentum step (the notebook's rates). Returns L."""
        z = self.forward(x)
        top = max(z)
        exps = [math.exp(v - top) for v in z]
        total = sum(exps)
        p = [e / total for e in exps]
        g = [pi - (1.0 if k == label else 0.0) for k, pi in enumerate(p)]
        for layer in reversed(self.layers):
            g = layer.backward(g)
        for layer in self.layers:
            if isinstance(layer, Linear):
                layer.momentum_step(*NOTEBOOK_RATES)
        return -math.log(p[label])


def notebook_samples_per_second(model: str, x: np.ndarray, y: np.ndarray, budget_s: float,
                                seed: int = 0) -> dict[str, float]:
    """Train NotebookNet(model, seed) one sample at a time, cycling over the first
    ``SAMPLES_IN_LISTS`` samples of x (N, 784) and int labels y (N,) (made lists
    before the clock starts), until ``budget_s`` seconds have passed (the clock is
    read after each sample). Returns samples k, seconds t, samples_per_s = k / t
    and the extrapolated epoch_seconds_60k = 60000 t / k."""
    if not budget_s > 0:
        raise ValueError(f"budget_s must be positive, got {budget_s}")
    check_data(x, y)
    net = NotebookNet(model, seed)
    images, labels = x[:SAMPLES_IN_LISTS].tolist(), y[:SAMPLES_IN_LISTS].tolist()
    k, t, start = 0, 0.0, time.perf_counter()
    while t < budget_s:
        net.train_sample(images[k % len(images)], labels[k % len(labels)])
        k += 1
        t = time.perf_counter() - start
    return {"samples": k, "seconds": t, "samples_per_s": k / t, "epoch_seconds_60k": 60000 * t / k}

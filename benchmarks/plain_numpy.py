"""The baseline: the notebook's deep MNIST model as a plain float32 NumPy script.

784 -> Linear 30 -> Dropout 0.1 -> tanh -> Linear 10 -> Dropout 0.1 -> tanh ->
Linear 10, softmax cross-entropy (mean over the batch), the notebook's
momentum (lr 0.01, mo 0.99); the loss is computed every step, as the
notebook does for its progress bar. Written as a careful NumPy user would,
with no library around it.
"""
from __future__ import annotations

import numpy as np

SIZES = [(784, 30), (30, 10), (10, 10)]
P, LR, MO = 0.1, 0.01, 0.99


def init(rng: np.random.Generator) -> list[np.ndarray]:
    params = []
    for n_in, n_out in SIZES:
        params.append((rng.standard_normal((n_out, n_in)) * 2 / (n_in + n_out)).astype(np.float32))
        params.append((rng.standard_normal(n_out) / n_out).astype(np.float32))
    return params


def epoch(params: list[np.ndarray], updates: list[np.ndarray], x: np.ndarray, y: np.ndarray,
          batch_size: int, rng: np.random.Generator) -> float:
    w1, b1, w2, b2, w3, b3 = params
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        n = len(xb)
        m1 = (rng.random((n, 30), dtype=np.float32) >= P).astype(np.float32)
        a1 = np.tanh((xb @ w1.T + b1) * m1)
        m2 = (rng.random((n, 10), dtype=np.float32) >= P).astype(np.float32)
        a2 = np.tanh((a1 @ w2.T + b2) * m2)
        z = a2 @ w3.T + b3
        s = z - z.max(axis=1, keepdims=True)
        log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        total += -(yb * log_p).sum() / n * n
        g3 = (np.exp(log_p) - yb) / n
        g2 = (g3 @ w3) * (1 - a2 * a2) * m2
        g1 = (g2 @ w2) * (1 - a1 * a1) * m1
        grads = [g1.T @ xb, g1.sum(axis=0), g2.T @ a1, g2.sum(axis=0), g3.T @ a2, g3.sum(axis=0)]
        for param, update, grad in zip(params, updates, grads):
            update *= MO
            update += (1 - MO) * grad
            param -= LR * update
    return total

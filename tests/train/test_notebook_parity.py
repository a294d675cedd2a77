"""Sample by sample, gpunet computes the notebook's numbers.

The reference below is the notebook's algorithm restated on Python lists
(one sample at a time, losses summed over the outputs, momentum as a moving
average); gpunet must match it step for step, whether a step gets a single
vector (D,) or a batch of one (1, D).
"""
import math

import numpy as np
import pytest

import gpunet


def ref_linear(w, b, x):
    return [sum(wi * xi for wi, xi in zip(row, x)) + bo for row, bo in zip(w, b)]


def ref_step(params, updates, x, y, lr, mo, loss):
    w1, b1, w2, b2 = params
    h = [math.tanh(v) for v in ref_linear(w1, b1, x)]
    z = ref_linear(w2, b2, h)
    if loss == "sse":
        value = sum((zi - yi) ** 2 for zi, yi in zip(z, y))
        gz = [2 * (zi - yi) for zi, yi in zip(z, y)]
    else:
        top = max(z)
        exps = [math.exp(zi - top) for zi in z]
        probs = [e / sum(exps) for e in exps]
        value = -sum(yi * math.log(pi) for yi, pi in zip(y, probs))
        gz = [pi - yi for pi, yi in zip(probs, y)]
    gh = [sum(w2[o][i] * gz[o] for o in range(len(z))) * (1 - h[i] ** 2) for i in range(len(h))]
    grads = [[[g * xi for xi in x] for g in gh], gh, [[g * hi for hi in h] for g in gz], gz]
    for param, update, grad in zip(params, updates, grads):
        for idx in np.ndindex(np.shape(param)):
            u = mo * _get(update, idx) + (1 - mo) * _get(grad, idx)
            _set(update, idx, u)
            _set(param, idx, _get(param, idx) - lr * u)
    return value


def _get(t, idx):
    for i in idx:
        t = t[i]
    return t


def _set(t, idx, value):
    for i in idx[:-1]:
        t = t[i]
    t[idx[-1]] = value


@pytest.mark.parametrize("loss_name", ["sse", "softmax-ce"])
@pytest.mark.parametrize("as_batch", [False, True])
def test_training_steps_match_the_notebook(backend, loss_name, as_batch):
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(3, 4, dtype="float64", backend=backend), gpunet.Tanh(),
                               gpunet.Linear(4, 2, dtype="float64", backend=backend)])
    params = [backend.to_numpy(p).tolist() for p in model.params()]
    updates = [np.zeros(np.shape(p)).tolist() for p in params]
    loss = gpunet.SSE() if loss_name == "sse" else gpunet.SoftmaxCrossEntropy()
    optimizer = gpunet.Momentum(0.1, 0.9)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x, y = rng.standard_normal(3).tolist(), [0.0, 1.0]
        expected = ref_step(params, updates, x, y, 0.1, 0.9, loss_name)
        xb, yb = ([x], [y]) if as_batch else (x, y)
        predicted = model.forward(backend.asarray(xb, np.float64))
        assert float(loss.loss(predicted, yb)) == pytest.approx(expected, rel=1e-12)
        model.backward(loss.gradient(predicted, yb))
        optimizer.step(model)
        for ours, theirs in zip(model.params(), params):
            np.testing.assert_allclose(backend.to_numpy(ours), theirs, rtol=1e-10, atol=1e-13)

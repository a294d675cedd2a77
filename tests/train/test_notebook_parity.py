"""Sample by sample, gpunet computes the notebook's numbers.

The reference below is the notebook's algorithm restated on Python lists
(one sample at a time, losses summed over the outputs, momentum as a moving
average), each formula written out here, not taken from gpunet's table; gpunet
must match it step for step, whether a step gets a single vector (D,) or a
batch of one (1, D), for every layer (Linear, Tanh, Sigmoid, Relu, LeakyRelu,
Dropout the notebook's way and inverted, Sequentials within Sequentials), both
losses and both optimizers. Dropout's keep-mask is the notebook's rule, u >= p,
on the device stream's draws recomputed by ``helpers.random_reference``; after
the steps, evaluation (dropout off) gives the reference's outputs too.
"""
import math

import numpy as np
import pytest

import gpunet
from helpers.random_reference import device_key, uniform

SEED, ALPHA = 0, 0.1
# name -> (f(x), f'(x) from y = f(x)), as the notebook writes them for one value
ACTIVATIONS = {
    "tanh": (math.tanh, lambda y: 1 - y * y),
    "sigmoid": (lambda x: 1 / (1 + math.exp(-x)), lambda y: y * (1 - y)),
    "relu": (lambda x: max(x, 0.0), lambda y: 1.0 if y > 0 else 0.0),
    "leaky-relu": (lambda x: x if x >= 0 else ALPHA * x, lambda y: 1.0 if y > 0 else ALPHA),
}
# Each model: gpunet's layers and the reference's, from 3 inputs to 2 outputs.
MODELS = {
    "tanh": ["linear 3 4", "tanh", "linear 4 2"],
    "sigmoid": ["linear 3 5", "sigmoid", "linear 5 2"],
    "relu": ["linear 3 6", "relu", "linear 6 2"],
    "leaky-relu": ["linear 3 6", "leaky-relu", "linear 6 2"],
    "dropout": ["linear 3 6", "dropout 0.3", "tanh", "linear 6 2"],
    "inverted-dropout": ["linear 3 6", "inverted-dropout 0.4", "sigmoid", "linear 6 2"],
    "nested": [["linear 3 4", "relu"], ["dropout 0.25", ["linear 4 4", "leaky-relu"]],
               "linear 4 2"],
}


def build(spec, backend):
    """gpunet's layers for ``spec`` (a list is a Sequential), and the flat list of
    the reference's layers in order: ["linear"], [activation name] or ["dropout", p, scale]."""
    if isinstance(spec, list):
        built = [build(part, backend) for part in spec]
        return gpunet.Sequential([layer for layer, _ in built]), [r for _, ref in built for r in ref]
    kind, *numbers = spec.split()
    if kind == "linear":
        return gpunet.Linear(*map(int, numbers), dtype="float64", backend=backend), [["linear"]]
    if kind.endswith("dropout"):
        p = float(numbers[0])
        inverted = kind == "inverted-dropout"
        return gpunet.Dropout(p, inverted=inverted), [["dropout", p, inverted]]
    layer = {"tanh": gpunet.Tanh(), "sigmoid": gpunet.Sigmoid(), "relu": gpunet.Relu(),
             "leaky-relu": gpunet.LeakyRelu(ALPHA)}[kind]
    return layer, [[kind]]


class Notebook:
    """The notebook's network on lists: ``params`` (per Linear: w as rows, b),
    the optimizer's updates, and the device stream's next dropout counter."""

    def __init__(self, layers, params, optimizer):
        self.layers, self.params, self.optimizer = layers, params, optimizer
        self.updates = [np.zeros(np.shape(p)).tolist() for p in params]
        self.key, self.counter = device_key(SEED), 0

    def forward(self, x, train=True):
        """The output, and what backward needs of each layer."""
        saved, linear = [], iter(zip(self.params[::2], self.params[1::2]))
        for layer in self.layers:
            if layer[0] == "linear":
                w, b = next(linear)
                saved.append((w, x))
                x = [sum(wi * xi for wi, xi in zip(row, x)) + bo for row, bo in zip(w, b)]
            elif layer[0] == "dropout":
                _, p, inverted = layer
                if not train:
                    x = x if inverted else [xi * (1 - p) for xi in x]
                    continue
                draws = uniform(self.key, self.counter, len(x))
                self.counter += len(x)
                scale = 1 / (1 - p) if inverted else 1.0
                mask = [scale if u >= p else 0.0 for u in draws]
                saved.append(mask)
                x = [xi * m for xi, m in zip(x, mask)]
            else:
                f, _ = ACTIVATIONS[layer[0]]
                x = [f(xi) for xi in x]
                saved.append(x)
        return x, saved

    def step(self, x, y, loss, lr, mo):
        """One training step on sample (x, y); the loss before it."""
        z, saved = self.forward(x)
        if loss == "sse":
            value = sum((zi - yi) ** 2 for zi, yi in zip(z, y))
            g = [2 * (zi - yi) for zi, yi in zip(z, y)]
        else:
            top = max(z)
            exps = [math.exp(zi - top) for zi in z]
            probs = [e / sum(exps) for e in exps]
            value = -sum(yi * math.log(pi) for yi, pi in zip(y, probs))
            g = [pi - yi for pi, yi in zip(probs, y)]
        grads = []
        for layer, kept in zip(reversed(self.layers), reversed(saved)):
            if layer[0] == "linear":
                w, inputs = kept
                grads[:0] = [[[gi * xi for xi in inputs] for gi in g], list(g)]
                g = [sum(w[o][i] * g[o] for o in range(len(g))) for i in range(len(inputs))]
            elif layer[0] == "dropout":
                g = [gi * m for gi, m in zip(g, kept)]
            else:
                _, df = ACTIVATIONS[layer[0]]
                g = [gi * df(yi) for gi, yi in zip(g, kept)]
        for param, update, grad in zip(self.params, self.updates, grads):
            for idx in np.ndindex(np.shape(param)):
                if self.optimizer == "momentum":
                    u = mo * _get(update, idx) + (1 - mo) * _get(grad, idx)
                    _set(update, idx, u)
                else:
                    u = _get(grad, idx)
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


@pytest.mark.parametrize("optimizer_name", ["momentum", "sgd"])
@pytest.mark.parametrize("loss_name", ["sse", "softmax-ce"])
@pytest.mark.parametrize("as_batch", [False, True])
@pytest.mark.parametrize("model_name", MODELS)
def test_training_steps_match_the_notebook(backend, model_name, as_batch, loss_name,
                                           optimizer_name):
    gpunet.seed(SEED)
    model, layers = build(MODELS[model_name], backend)
    gpunet.set_train(model, True)
    notebook = Notebook(layers, [backend.to_numpy(p).tolist() for p in model.params()],
                        optimizer_name)
    loss = gpunet.SSE() if loss_name == "sse" else gpunet.SoftmaxCrossEntropy()
    lr, mo = 0.1, 0.9
    optimizer = gpunet.Momentum(lr, mo) if optimizer_name == "momentum" else \
        gpunet.GradientDescent(lr)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x, y = rng.standard_normal(3).tolist(), [0.0, 1.0]
        expected = notebook.step(x, y, loss_name, lr, mo)
        xb, yb = ([x], [y]) if as_batch else (x, y)
        predicted = model.forward(backend.asarray(xb, np.float64))
        assert float(loss.loss(predicted, yb)) == pytest.approx(expected, rel=1e-12)
        model.backward(loss.gradient(predicted, yb))
        optimizer.step(model)
        for ours, theirs in zip(model.params(), notebook.params, strict=True):
            np.testing.assert_allclose(backend.to_numpy(ours), theirs, rtol=1e-10, atol=1e-13)
    gpunet.set_train(model, False)
    x = rng.standard_normal(3).tolist()
    predicted = model.forward(backend.asarray([x] if as_batch else x, np.float64))
    np.testing.assert_allclose(backend.to_numpy(predicted).ravel(),
                               notebook.forward(x, train=False)[0], rtol=1e-12, atol=1e-14)

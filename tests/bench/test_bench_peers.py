"""The benchmark's peers: the notebook's pure-Python loop and PyTorch eager."""
from __future__ import annotations

import random
import sys

import numpy as np
import pytest

from gpunet.bench.peer_model import gpunet_model
from gpunet.bench.peer_notebook import Dropout, NotebookNet
from gpunet.bench.peers import (notebook_samples_per_second, torch_trainer, torch_unavailable,
                              torch_version)
from gpunet.models import NOTEBOOK_RATES

NO_TORCH = "PyTorch is not installed: the optional PyTorch peer (pip install torch)"

LR, MO = NOTEBOOK_RATES


def mnist_like(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(0, 0.5, (n, 784)).astype(np.float32), rng.integers(0, 10, n)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


# -- the notebook's loop ---------------------------------------------------------------------

@pytest.mark.parametrize("model", ["logistic", "deep"])
def test_notebook_rate_is_extrapolated_from_a_time_box(model):
    x, y = mnist_like(20)
    result = notebook_samples_per_second(model, x, y, budget_s=0.2)
    assert result["samples"] >= 1 and result["seconds"] >= 0.2
    assert result["samples_per_s"] == pytest.approx(result["samples"] / result["seconds"])
    assert result["epoch_seconds_60k"] == pytest.approx(60000 / result["samples_per_s"])


@pytest.mark.parametrize("model", ["logistic", "wide"])
def test_notebook_forward_is_gpunets_model(model):
    x = mnist_like(1)[0][0].astype(np.float64)
    _, params = gpunet_model(model)
    a = x
    for i in range(0, len(params), 2):
        a = params[i].astype(np.float64) @ a + params[i + 1]
        if i + 2 < len(params):
            a = np.maximum(a, 0)  # 'wide' is relu between its Linear layers
    np.testing.assert_allclose(NotebookNet(model).forward(x.tolist()), a, rtol=1e-9, atol=1e-12)


def test_notebook_deep_step_is_the_notebooks_maths():
    """One step from zero momentum moves every parameter by -lr (1 - mo) dL/dparam,
    with the gradients of the deep model written out for the masks drawn."""
    x, label = mnist_like(1)[0][0].astype(np.float64), 3
    net = NotebookNet("deep")
    loss = net.train_sample(x.tolist(), label)
    m1, m2 = np.array(net.layers[1].mask), np.array(net.layers[4].mask)
    w1, b1, w2, b2, w3, b3 = (p.astype(np.float64) for p in gpunet_model("deep")[1])
    h1 = np.tanh((w1 @ x + b1) * m1)
    h2 = np.tanh((w2 @ h1 + b2) * m2)
    p = softmax(w3 @ h2 + b3)
    g3 = p - np.eye(10)[label]
    g2 = (w3.T @ g3) * (1 - h2 ** 2) * m2
    g1 = (w2.T @ g2) * (1 - h1 ** 2) * m1
    grads = [np.outer(g1, x), g1, np.outer(g2, h1), g2, np.outer(g3, h2), g3]
    assert loss == pytest.approx(-np.log(p[label]))
    after = [value for layer in net.layers[::3] for value in (layer.w, layer.b)]
    for new, old, grad in zip(after, (w1, b1, w2, b2, w3, b3), grads):
        np.testing.assert_allclose(new, old - LR * (1 - MO) * grad, rtol=1e-9, atol=1e-12)


def test_notebook_dropout_zeroes_with_probability_p_and_does_not_rescale():
    out = Dropout(0.5, random.Random(0)).forward([2.0] * 1000)
    assert set(out) == {0.0, 2.0}
    assert 400 < out.count(0.0) < 600


def test_notebook_logistic_learns_an_easy_problem():
    rng = np.random.default_rng(0)
    templates = rng.choice([-1.0, 1.0], (10, 784))
    labels = rng.integers(0, 10, 200)
    images = templates[labels] + rng.normal(0, 0.1, (200, 784))
    net = NotebookNet("logistic")
    losses = [net.train_sample(image.tolist(), int(label)) for image, label in zip(images, labels)]
    assert np.mean(losses[-50:]) < 0.1 * np.mean(losses[:50])


@pytest.mark.parametrize("args, message", [
    (("mlp", 0.1), "valid models: logistic, deep, wide"),
    (("deep", 0), "budget_s must be positive"),
])
def test_notebook_rejects_bad_arguments(args, message):
    x, y = mnist_like(4)
    with pytest.raises(ValueError, match=message):
        notebook_samples_per_second(args[0], x, y, args[1])
    with pytest.raises(ValueError, match="need x"):
        notebook_samples_per_second("deep", x[:, :100], y, 0.1)


# -- PyTorch ---------------------------------------------------------------------------------

def test_without_torch_the_reason_is_given(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert torch_unavailable("cpu") == "PyTorch is not installed"
    assert torch_version() is None
    with pytest.raises(RuntimeError, match="PyTorch is not installed"):
        torch_trainer("deep", 1, *mnist_like(4))


def test_torch_availability_per_device():
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    assert torch_version() == torch.__version__
    assert torch_unavailable("cpu") is None
    if torch.cuda.is_available():
        assert torch_unavailable("cuda") is None
    else:
        assert torch_unavailable("cuda").startswith("no CUDA device for PyTorch")
    with pytest.raises(ValueError, match="valid devices: cpu, cuda"):
        torch_unavailable("tpu")


@pytest.mark.parametrize("model", ["logistic", "deep", "wide"])
@pytest.mark.parametrize("batch_size", [1, 32])
def test_torch_step_and_epoch_train_gpunets_model(model, batch_size):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    trainer = torch_trainer(model, batch_size, *mnist_like(48))
    assert (trainer.name, trainer.device) == ("torch", "cpu")
    initial = [p.detach().clone() for p in trainer.net.parameters()]
    for value, expected in zip(initial, gpunet_model(model)[1]):
        np.testing.assert_array_equal(value.numpy(), expected)
    for train in (trainer.step, trainer.epoch):
        before = [p.detach().clone() for p in trainer.net.parameters()]
        train()
        trainer.synchronize()
        assert all(not torch.equal(b, p) for b, p in zip(before, trainer.net.parameters()))


@pytest.mark.parametrize("model", ["logistic", "wide"])
def test_torch_and_the_notebook_take_the_same_steps(model):
    """Without dropout both peers are deterministic: two steps on one sample agree,
    momentum included (u starts at 0, u <- mo u + (1 - mo) g)."""
    pytest.importorskip("torch", reason=NO_TORCH)
    x, y = mnist_like(1)
    trainer, net = torch_trainer(model, 1, x, y), NotebookNet(model)
    for _ in range(2):
        trainer.step()
        net.train_sample(x[0].tolist(), int(y[0]))
    linears = [layer for layer in net.layers if hasattr(layer, "w")]
    expected = [value for layer in linears for value in (layer.w, layer.b)]
    for param, value in zip(trainer.net.parameters(), expected):
        np.testing.assert_allclose(param.detach().numpy(), value, rtol=1e-4, atol=1e-6)


def test_torch_dropout_is_the_notebooks():
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    dropout = torch_trainer("deep", 1, *mnist_like(1)).net[1]
    out = dropout(torch.full((10000,), 2.0))
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert 800 < int((out == 0).sum()) < 1200


@pytest.mark.parametrize("args, message", [
    (("mlp", 1), "valid models: logistic, deep, wide"),
    (("deep", 0), "batch_size must be positive"),
])
def test_torch_rejects_bad_arguments(args, message):
    pytest.importorskip("torch", reason=NO_TORCH)
    x, y = mnist_like(4)
    with pytest.raises(ValueError, match=message):
        torch_trainer(*args, x, y)
    with pytest.raises(ValueError, match="need x"):
        torch_trainer("deep", 1, x, y[:2])


def test_a_torch_graph_needs_cuda_and_a_full_batch():
    with pytest.raises(ValueError, match="a CUDA graph needs device 'cuda', got 'cpu'"):
        torch_trainer("deep", 4, *mnist_like(8), graph=True)
    with pytest.raises(ValueError, match="a CUDA graph of batches of 16 needs at least that "
                                         "many rows, got 8"):
        torch_trainer("deep", 16, *mnist_like(8), device="cuda", graph=True)


@pytest.mark.gpu
def test_the_torch_graph_peer_trains_as_torch_eager():
    """Full batches replayed from the graph, the last eagerly, from the same start:
    the logistic model (no dropout, whose draws differ) ends where eager ends."""
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    if not torch.cuda.is_available():
        pytest.skip(torch_unavailable("cuda"))
    x, y = mnist_like(300)  # two full batches of 128 and a last one of 44
    eager, graphed = (torch_trainer("logistic", 128, x, y, "cuda", graph=graph)
                      for graph in (False, True))
    for trainer in (eager, graphed):
        trainer.epoch()
        trainer.epoch()
        trainer.synchronize()
    for a, b in zip(eager.net.parameters(), graphed.net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

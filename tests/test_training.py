"""train_epoch and accuracy: the notebook's loop, in mini-batches."""
import numpy as np
import pytest

import gpunet
from conftest import host


def small_problem(backend):
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(5, 8, backend=backend), gpunet.Tanh(),
                               gpunet.Linear(8, 3, backend=backend)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 5)).astype(np.float32)
    y = gpunet.one_hot_encode(rng.integers(0, 3, 10), 3, backend=backend)
    return model, x, y


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_epoch_loss_is_the_sum_of_sample_losses_for_any_batch_size(backend, reduction):
    model, x, y = small_problem(backend)
    loss = gpunet.SoftmaxCrossEntropy(reduction)
    expected = sum(float(loss.loss(model.forward(xi), yi)) for xi, yi in zip(x, host(backend, y)))
    frozen = gpunet.GradientDescent(0.0)
    for batch_size in [1, 3, 10, 64]:
        total = gpunet.train_epoch(model, loss, frozen, x, y, batch_size)
        assert float(total) == pytest.approx(expected, rel=1e-5)


def test_training_lowers_the_loss(backend):
    model, x, y = small_problem(backend)
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1, 0.9)
    first = float(gpunet.train_epoch(model, loss, optimizer, x, y, 2))
    for _ in range(100):
        last = float(gpunet.train_epoch(model, loss, optimizer, x, y, 2))
    assert last < first / 2
    assert gpunet.accuracy(model, x, y) == 1.0


def test_shuffled_epochs_repeat_with_the_seed(backend):
    results = []
    for _ in range(2):
        model, x, y = small_problem(backend)
        gpunet.train_epoch(model, gpunet.SSE(), gpunet.GradientDescent(0.1), x, y, 3, shuffle=True)
        results.append([host(backend, p).copy() for p in model.params()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_data_shapes_are_checked(numpy_backend):
    model, x, y = small_problem(numpy_backend)
    with pytest.raises(ValueError, match=r"same N, got shapes \(10, 5\) and \(9, 3\)"):
        gpunet.train_epoch(model, gpunet.SSE(), gpunet.GradientDescent(), x, y[:9])
    with pytest.raises(ValueError, match=r"got shapes \(5,\) and \(3,\)"):
        gpunet.train_epoch(model, gpunet.SSE(), gpunet.GradientDescent(), x[0], y[0])

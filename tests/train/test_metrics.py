"""EpochMetrics: each sample's loss and hit kept on the device, read back at most at refresh."""
import time

import numpy as np
import pytest

import gpunet
from gpunet.train import EpochMetrics, NonFiniteLoss, steps
from gpunet.bench.trainers import mnist_like


def problem(backend, n, model="deep"):
    gpunet.seed(0)
    model = gpunet.mnist_model(model, backend=backend)
    x, labels = mnist_like(n)
    return model, backend.asarray(x), gpunet.one_hot_encode(labels, backend=backend)


def test_read_gives_the_mean_loss_and_accuracy_of_the_samples_so_far(backend):
    model, x, y = problem(backend, 100, "logistic")  # with no learning, the same numbers again
    metrics = EpochMetrics(backend, 100, 32, epoch=1)
    for _ in steps(model, gpunet.SSE(), gpunet.GradientDescent(0.0), x, y, 32, metrics=metrics):
        pass
    predicted = model.forward(x)
    losses = ((backend.to_numpy(predicted) - backend.to_numpy(y)) ** 2).sum(axis=1)
    hits = backend.to_numpy(predicted).argmax(axis=1) == backend.to_numpy(y).argmax(axis=1)
    for done in (1, 64, 100):
        mean_loss, accuracy = metrics.read(done)
        assert mean_loss == pytest.approx(losses[:done].mean(), rel=1e-5)
        assert accuracy == hits[:done].mean()


def test_read_names_the_first_step_with_a_non_finite_loss(numpy_backend):
    metrics = EpochMetrics(numpy_backend, 50, 8, epoch=3)
    metrics.losses[[20, 41]] = [np.inf, np.nan]
    assert metrics.read(16) == (0.0, 0.0)
    with pytest.raises(NonFiniteLoss, match="epoch 3 at step 3"):
        metrics.read(50)


SPIN = r"""
extern "C" __global__ void spin(long long cycles) {
    const long long start = clock64();
    while (clock64() - start < cycles) {}
}
"""


@pytest.mark.gpu
def test_steps_and_their_metrics_never_wait_for_the_device():
    """Queue a kernel that keeps the GPU busy for about a second, then train
    and record ten steps: if anything in them synchronized or copied to the
    host, the busy kernel would have finished by the time they return."""
    import cupy

    backend = gpunet.get_backend("cupy")
    model, x, y = problem(backend, 1280)
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.5, 0.9)
    gpunet.set_train(model, True)

    def epoch() -> EpochMetrics:
        metrics = EpochMetrics(backend, len(x), 128, epoch=1)
        for _ in steps(model, loss, optimizer, x, y, 128, metrics=metrics):
            pass
        return metrics

    epoch()  # compiles the kernels and fills the memory pool
    stream = cupy.cuda.get_current_stream()
    stream.synchronize()
    cupy.RawKernel(SPIN, "spin")((1,), (1,), (cupy.int64(2_000_000_000),))  # 1 s at 2 GHz
    started = time.perf_counter()
    metrics = epoch()
    queued_in = time.perf_counter() - started
    assert not stream.done, f"the steps waited for the device (they took {queued_in:.3f} s)"
    mean_loss, _ = metrics.read(len(x))
    assert np.isfinite(mean_loss)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_an_infinite_loss_is_reported_as_a_nan_is(numpy_backend, bad):
    """Infinite, not NaN, is non-finite too: NonFiniteLoss naming its step."""
    metrics = EpochMetrics(numpy_backend, 50, 8, epoch=2)
    metrics.losses[33] = bad
    with pytest.raises(NonFiniteLoss, match="epoch 2 at step 5"):
        metrics.read(50)

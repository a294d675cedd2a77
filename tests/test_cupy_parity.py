"""One epoch of the deep model on NumPy and on CuPy: the same seed, the same numbers."""
import numpy as np
import pytest

import gpunet
from benchmarks.trainers import mnist_like


def deep_model(backend):
    """The notebook's deep model with dropout p = 0: the two devices draw their
    masks from different generators, so only mask-free dropout can match."""
    gpunet.seed(0)
    return gpunet.Sequential([
        gpunet.Linear(784, 30, backend=backend), gpunet.Dropout(0.0), gpunet.Tanh(),
        gpunet.Linear(30, 10, backend=backend), gpunet.Dropout(0.0), gpunet.Tanh(),
        gpunet.Linear(10, 10, backend=backend)])


@pytest.mark.gpu
def test_one_epoch_agrees_across_backends():
    x, labels = mnist_like(4096)
    y = np.eye(10, dtype=np.float32)[labels]
    results = {}
    for name in ("numpy", "cupy"):
        backend = gpunet.get_backend(name)
        model = deep_model(backend)
        loss = gpunet.train_epoch(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99),
                                  x, y, batch_size=128)
        results[name] = float(loss), [backend.to_numpy(p) for p in model.params()]
    (numpy_loss, numpy_params), (cupy_loss, cupy_params) = results["numpy"], results["cupy"]
    assert cupy_loss == pytest.approx(numpy_loss, rel=1e-4)
    for a, b in zip(numpy_params, cupy_params):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)

"""One epoch of the deep model on NumPy and on CuPy: the same seed, the same numbers.

Both backends start from the same host-drawn weights and draw their shuffle
and dropout masks from the same counter-based stream, so the two runs take
the same steps and differ only by floating-point rounding.
"""
import numpy as np
import pytest

import gpunet
from gpunet.bench.trainers import mnist_like


@pytest.mark.gpu
def test_one_epoch_of_the_deep_model_agrees_across_backends():
    x, labels = mnist_like(4096)
    y = np.eye(10, dtype=np.float32)[labels]
    results = {}
    for name in ("numpy", "cupy"):
        backend = gpunet.get_backend(name)
        gpunet.seed(0)
        model = gpunet.mnist_model("deep", backend=backend)
        [stats] = gpunet.fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99),
                             backend.asarray(x), backend.asarray(y), epochs=1, batch_size=128,
                             progress=False)
        results[name] = stats, [backend.to_numpy(p) for p in model.params()]
    (numpy_stats, numpy_params), (cupy_stats, cupy_params) = results["numpy"], results["cupy"]
    assert cupy_stats.loss == pytest.approx(numpy_stats.loss, rel=1e-4)
    assert cupy_stats.accuracy == pytest.approx(numpy_stats.accuracy, abs=2 / len(x))
    for a, b in zip(numpy_params, cupy_params):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)

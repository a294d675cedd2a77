"""The models the planned and graph steps are checked on: the presets and three
small ones with dropout and each activation, seeded alike."""
import functools

import gpunet


def model_of(name, backend, dtype=None):
    gpunet.seed(3)
    if name in gpunet.models.PRESETS:
        return gpunet.mnist_model(name, backend=backend, dtype=dtype)
    linear = functools.partial(gpunet.Linear, dtype=dtype, backend=backend)
    return gpunet.Sequential({
        "sigmoid-inverted": [linear(784, 16), gpunet.Dropout(0.3, inverted=True), gpunet.Sigmoid(),
                             linear(16, 10)],
        "relu-dropout": [linear(784, 12), gpunet.Dropout(0.5), gpunet.Relu(), linear(12, 8),
                         gpunet.Tanh(), linear(8, 10)],
        "leaky-relu-dropout": [linear(784, 12), gpunet.Dropout(0.2), gpunet.LeakyRelu(0.1),
                               linear(12, 10)],
    }[name])

"""gpunet: the "deep learning from scratch" network library on NumPy and CuPy arrays.

The public names below load their module on first use, so that importing
gpunet (and starting its command) costs nothing until an array is needed.
"""
from __future__ import annotations

from ._exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "backend": ("Backend", "BackendUnavailable", "backend_of", "explain_auto", "get_backend"),
    "checkpoint": ("Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint"),
    "data": ("load_mnist",),
    "functional": ("argmax", "binary_encode", "fizz_buzz_encode", "log_softmax", "one_hot_encode",
                   "softmax"),
    "init": ("random_tensor",),
    "layers": ("Activation", "Dropout", "Layer", "LeakyRelu", "Linear", "Relu", "Sequential",
               "Sigmoid", "Tanh", "build", "describe", "set_train"),
    "models": ("mnist_model",),
    "losses": ("SSE", "Loss", "SoftmaxCrossEntropy"),
    "optimizers": ("GradientDescent", "Momentum", "Optimizer"),
    "seeding": ("seed",),
    "train": ("EpochStats", "NonFiniteLoss", "accuracy", "evaluate", "fit", "train_epoch"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

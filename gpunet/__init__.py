"""gpunet: the "deep learning from scratch" network library on NumPy and CuPy arrays.

The public names below load their module on first use, so that importing
gpunet (and starting its command) costs nothing until an array is needed.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "backend": ("Backend", "BackendUnavailable", "backend_of", "explain_auto", "get_backend"),
    "checkpoint": ("Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint"),
    "data": ("load_mnist",),
    "fitting": ("EpochStats", "evaluate", "fit"),
    "functional": ("argmax", "binary_encode", "fizz_buzz_encode", "log_softmax", "one_hot_encode",
                   "softmax"),
    "init": ("random_tensor",),
    "layers": ("Activation", "Dropout", "Layer", "Linear", "Relu", "Sequential", "Sigmoid", "Tanh",
               "build", "describe", "set_train"),
    "models": ("mnist_model",),
    "losses": ("SSE", "Loss", "SoftmaxCrossEntropy"),
    "metrics": ("NonFiniteLoss",),
    "optimizers": ("GradientDescent", "Momentum", "Optimizer"),
    "seeding": ("seed",),
    "training": ("accuracy", "train_epoch"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'gpunet' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

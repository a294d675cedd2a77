"""gpunet: the "deep learning from scratch" network library on NumPy and CuPy arrays."""
from .backend import Backend, BackendUnavailable, backend_of, explain_auto, get_backend
from .functional import (argmax, binary_encode, fizz_buzz_encode, log_softmax, one_hot_encode,
                         softmax)
from .init import random_tensor
from .layers import Activation, Dropout, Layer, Linear, Relu, Sequential, Sigmoid, Tanh
from .losses import SSE, Loss, SoftmaxCrossEntropy
from .optimizers import GradientDescent, Momentum, Optimizer
from .seeding import seed
from .training import accuracy, train_epoch

__version__ = "0.1.0"

__all__ = [
    "Activation", "Backend", "BackendUnavailable", "Dropout", "GradientDescent", "Layer",
    "Linear", "Loss", "Momentum", "Optimizer", "Relu", "SSE", "Sequential", "Sigmoid",
    "SoftmaxCrossEntropy", "Tanh", "accuracy", "argmax", "backend_of", "binary_encode",
    "explain_auto", "fizz_buzz_encode", "get_backend", "log_softmax", "one_hot_encode",
    "random_tensor", "seed", "softmax", "train_epoch",
]

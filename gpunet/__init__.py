"""gpunet: the "deep learning from scratch" network library on NumPy and CuPy arrays."""
from .backend import Backend, BackendUnavailable, backend_of, explain_auto, get_backend
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .fitting import EpochStats, evaluate, fit
from .functional import (argmax, binary_encode, fizz_buzz_encode, log_softmax, one_hot_encode,
                         softmax)
from .init import random_tensor
from .layers import (Activation, Dropout, Layer, Linear, Relu, Sequential, Sigmoid, Tanh, build,
                     describe, set_train)
from .models import mnist_model
from .losses import SSE, Loss, SoftmaxCrossEntropy
from .metrics import NonFiniteLoss
from .optimizers import GradientDescent, Momentum, Optimizer
from .seeding import seed
from .training import accuracy, train_epoch

__version__ = "0.1.0"

__all__ = [
    "Activation", "Backend", "BackendUnavailable", "Checkpoint", "CheckpointError", "Dropout",
    "EpochStats", "GradientDescent", "Layer", "Linear", "Loss", "Momentum", "NonFiniteLoss",
    "Optimizer", "Relu", "SSE", "Sequential", "Sigmoid", "SoftmaxCrossEntropy", "Tanh",
    "accuracy", "argmax", "backend_of", "binary_encode", "build", "describe", "evaluate",
    "explain_auto", "fit", "fizz_buzz_encode", "get_backend", "load_checkpoint", "log_softmax",
    "mnist_model", "one_hot_encode", "random_tensor", "save_checkpoint", "seed", "set_train",
    "softmax", "train_epoch",
]

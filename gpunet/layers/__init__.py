"""The notebook's layers on backend arrays."""
from .activations import Activation, Relu, Sigmoid, Tanh
from .dropout import Dropout
from .layer import Layer
from .linear import Linear
from .sequential import Sequential
from .spec import build, describe, set_train

__all__ = ["Activation", "Dropout", "Layer", "Linear", "Relu", "Sequential", "Sigmoid", "Tanh",
           "build", "describe", "set_train"]

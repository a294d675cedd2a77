"""The notebook's layers on backend arrays."""
from .activations import Activation, Relu, Sigmoid, Tanh
from .dropout import Dropout
from .layer import Layer
from .linear import Linear
from .sequential import Sequential

__all__ = ["Activation", "Dropout", "Layer", "Linear", "Relu", "Sequential", "Sigmoid", "Tanh"]

"""The notebook's layers on backend arrays."""
from . import activations
from .activations import *  # noqa: F403 (Activation and every activation layer)
from .dropout import Dropout
from .layer import Layer
from .linear import Linear
from .sequential import Sequential
from .spec import build, describe, set_train

__all__ = [*activations.__all__, "Dropout", "Layer", "Linear", "Sequential", "build", "describe",
           "set_train"]

"""The CPU backend: the generic operations of ``Backend`` on NumPy arrays."""
from __future__ import annotations

import numpy as np

from .base import Backend


class NumpyBackend(Backend):
    name = "numpy"
    xp = np
    array_type = np.ndarray

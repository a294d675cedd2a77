"""Initial parameter values, drawn on the host so every backend starts alike.

The notebook's ``random_normal`` multiplies the standard normal draw by the
*variance*, so its 'xavier' weights have standard deviation 2/(in+out) rather
than sqrt(2/(in+out)). gpunet keeps that as 'xavier' (results match the
notebook) and offers the textbook Glorot/Xavier scale as 'glorot'.
"""
from __future__ import annotations

import math

import numpy as np

from . import seeding

INITS = ("xavier", "glorot", "normal", "uniform")


def random_tensor(*dims: int, init: str = "normal") -> np.ndarray:
    """A float64 host array of shape ``dims`` drawn by scheme ``init``:

    * 'normal':  N(0, 1)
    * 'uniform': U[0, 1)
    * 'xavier':  N(0, sd = v), v = len(dims) / sum(dims)   (the notebook's scale)
    * 'glorot':  N(0, sd = sqrt(v))                        (the textbook scale)
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid inits: {', '.join(INITS)}")
    if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                       for d in dims):
        raise ValueError(f"dimensions must be positive integers, got {dims}")
    rng = seeding.host_rng()
    if init == "uniform":
        return rng.random(dims)
    draws = rng.standard_normal(dims)
    if init == "normal":
        return draws
    variance = len(dims) / sum(dims)
    return draws * (variance if init == "xavier" else math.sqrt(variance))

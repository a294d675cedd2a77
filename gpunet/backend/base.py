"""The Backend: an array module ``xp`` plus the few operations that differ by device.

Everything here is written once against ``self.xp``, so the NumPy backend is
this class with ``xp = numpy``; a device backend overrides the operations it
can fuse into custom kernels and keeps the same contracts:

* every operation preserves the floating dtype of its inputs (float32 stays
  float32: constants are Python scalars, which never promote an array);
* activation gradients are computed from the saved *output* ``y``, not the input;
* updates write into the given arrays in place.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .. import seeding

DEFAULT_DTYPE = np.dtype(np.float32)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

Array = Any  # an array of the backend's module (numpy.ndarray, cupy.ndarray)


class Backend:
    """Array creation, transfer, randomness and elementwise kernels for one device."""

    name: str
    xp: ModuleType
    array_type: type

    def __init__(self) -> None:
        self.rng: Any = None
        seeding.on_seed(self.reseed)

    def __repr__(self) -> str:
        return f"<gpunet backend {self.name!r}>"

    # -- creation and transfer -------------------------------------------
    def asarray(self, x: Any, dtype: Any = None) -> Array:
        """``x`` as an array on this device, of ``dtype`` if given; otherwise
        float32 and float64 arrays keep their dtype and anything else (lists,
        ints, bools, float16) becomes float32."""
        if dtype is None:
            dtype = getattr(x, "dtype", None)
            if dtype is None or dtype not in FLOAT_DTYPES:  # dtype(float64) == None holds
                dtype = DEFAULT_DTYPE
        if type(x) is self.array_type and x.dtype == dtype:
            return x
        return self.xp.asarray(x, dtype=np.dtype(dtype))

    def to_numpy(self, x: Array) -> np.ndarray:
        """A host NumPy copy (or view, on the CPU) of ``x``."""
        return np.asarray(x)

    def zeros_like(self, x: Array) -> Array:
        return self.xp.zeros_like(x)

    def synchronize(self) -> None:
        """Wait for queued device work to finish (a no-op on the CPU)."""

    # -- randomness -------------------------------------------------------
    def reseed(self) -> None:
        """Restart this device's generator from gpunet's seed (fresh entropy if unseeded)."""
        self.rng = self._make_rng(seeding.stream_seed(seeding.DEVICE_STREAM))

    def _make_rng(self, seed: int | None) -> Any:
        return self.xp.random.default_rng(seed)

    def permutation(self, n: int) -> Array:
        """A random permutation of ``range(n)``, drawn on this device."""
        return self.xp.argsort(self.rng.random(n, dtype=np.float32), kind="stable")

    # -- activations: y = f(x), and dL/dx = f'(x) * gy computed from y ----------
    def sigmoid(self, x: Array) -> Array:
        """1 / (1 + e^-x): exact in relative terms for every x; where e^-x
        overflows to inf the result is the correct limit 0."""
        return 1 / (1 + self.xp.exp(-x))

    def sigmoid_grad(self, y: Array, gy: Array) -> Array:
        """sigma'(x) = y (1 - y)."""
        return gy * y * (1 - y)

    def tanh(self, x: Array) -> Array:
        return self.xp.tanh(x)

    def tanh_grad(self, y: Array, gy: Array) -> Array:
        """tanh'(x) = 1 - y^2."""
        slope = y * y
        self.xp.subtract(1, slope, out=slope)
        slope *= gy
        return slope

    def relu(self, x: Array) -> Array:
        return self.xp.maximum(x, 0)

    def relu_grad(self, y: Array, gy: Array) -> Array:
        """relu'(x) = 1 where y > 0, else 0 (the notebook's choice at x = 0)."""
        return gy * (y > 0)

    # -- along rows: the last axis of (N, k) arrays, or of one (k,) row ---------
    def softmax_cross_entropy(self, z: Array, a: Array, scale: float) -> tuple[Array, Array]:
        """Softmax cross-entropy of logits ``z`` against targets ``a`` (same
        shape): each row's loss -sum_j a_j log softmax(z)_j, computed as
        -sum_j a_j (z_j - max z - log sum_i e^(z_i - max z)), and the gradient
        (softmax(z) - a) * scale. Returns ``(losses, gradient)``."""
        row_length("softmax_cross_entropy", z, a)
        shifted = z - z.max(axis=-1, keepdims=True)
        e = self.xp.exp(shifted)
        total = e.sum(axis=-1, keepdims=True)
        shifted -= self.xp.log(total)
        shifted *= a
        losses = -shifted.sum(axis=-1)
        e /= total
        e -= a
        if scale != 1:
            e *= scale
        return losses, e

    def matches(self, p: Array, t: Array, out: Array | None = None) -> Array:
        """Whether each row of ``p`` has its largest entry where that row of
        ``t`` has (the first largest, as argmax): booleans, into ``out`` if given."""
        row_length("matches", p, t)
        return self.xp.equal(p.argmax(axis=-1), t.argmax(axis=-1), out=out)

    # -- dropout ------------------------------------------------------------
    def dropout(self, x: Array, p: float, scale: float) -> tuple[Array, Array]:
        """Keep each element with probability 1 - p: returns ``(x * mask, mask)``,
        with ``mask`` holding ``scale`` where kept and 0 where dropped."""
        mask = self.rng.random(x.shape, dtype=x.dtype)
        self.xp.greater_equal(mask, p, out=mask)  # 1.0 where kept, in place
        if scale != 1:
            mask *= scale
        return x * mask, mask

    # -- optimizer updates, in place -----------------------------------------
    def sgd_update(self, param: Array, grad: Array, lr: float) -> None:
        """param -= lr * grad."""
        param -= lr * grad

    def momentum_update(self, param: Array, velocity: Array, grad: Array,
                        lr: float, momentum: float) -> None:
        """velocity = momentum velocity + (1 - momentum) grad;  param -= lr velocity."""
        velocity *= momentum
        velocity += (1 - momentum) * grad
        param -= lr * velocity


def row_length(operation: str, first: Array, second: Array) -> int:
    """The length ``k`` of the rows ``operation`` pairs up: ValueError unless
    both arrays have one shape, one or two axes, and ``k`` >= 1."""
    if first.shape != second.shape or first.ndim not in (1, 2) or first.shape[-1] == 0:
        raise ValueError(f"{operation} needs two arrays of one shape (N, k) or (k,) with k >= 1, "
                         f"got shapes {first.shape} and {second.shape}")
    return first.shape[-1]

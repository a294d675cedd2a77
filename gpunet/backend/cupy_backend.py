"""The CUDA backend through CuPy.

Each device operation is one fused kernel from ``kernels.py`` (strides and
broadcasting handled by CuPy, empty arrays launch nothing),
with the contracts of ``Backend``, its dtypes included: inputs of mixed
dtypes are cast first, as ``Backend`` documents, since one kernel type takes
them. Scalars travel as kernel arguments, so no operation waits for the
device. Import this module only after ``probe_cuda()`` said a device is usable.
"""
from __future__ import annotations

import cupy
import numpy as np

from .base import Array, Backend, float_rows, row_length
from .kernels import elementwise


class CupyBackend(Backend):
    name = "cupy"
    xp = cupy
    array_type = cupy.ndarray

    def to_numpy(self, x: Array) -> np.ndarray:
        return cupy.asnumpy(x)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    def sigmoid(self, x: Array) -> Array:
        return elementwise("sigmoid")(x)

    def sigmoid_grad(self, y: Array, gy: Array) -> Array:
        return elementwise("sigmoid_grad")(*_promoted(y, gy))

    def tanh(self, x: Array) -> Array:
        return elementwise("tanh")(x)

    def tanh_grad(self, y: Array, gy: Array) -> Array:
        return elementwise("tanh_grad")(*_promoted(y, gy))

    def relu(self, x: Array) -> Array:
        return elementwise("relu")(x)

    def relu_grad(self, y: Array, gy: Array) -> Array:
        return elementwise("relu_grad")(*_promoted(y, gy))

    def softmax_cross_entropy(self, z: Array, a: Array, scale: float) -> tuple[Array, Array]:
        k = float_rows("softmax_cross_entropy", z, a)
        (a,) = _cast(z.dtype, a)
        losses, gradient = cupy.empty(z.shape[:-1], z.dtype), cupy.empty(z.shape, z.dtype)
        elementwise("softmax_cross_entropy")(z, a, k, scale, losses, gradient)
        return losses, gradient

    def matches(self, p: Array, t: Array, out: Array | None = None) -> Array:
        k = row_length("matches", p, t)
        out = cupy.empty(p.shape[:-1], bool) if out is None else out
        return elementwise("matches")(p, t, k, out)

    def dropout(self, x: Array, p: float, scale: float) -> tuple[Array, Array]:
        first = np.uint64(self.take_counters(x.size))
        return elementwise("dropout")(x, np.uint64(self.key), first, p, scale)

    def sgd_update(self, param: Array, grad: Array, lr: float) -> None:
        (grad,) = _cast(param.dtype, grad)
        elementwise("sgd_update")(grad, lr, param)

    def momentum_update(self, param: Array, velocity: Array, grad: Array,
                        lr: float, momentum: float) -> None:
        (grad,) = _cast(param.dtype, grad)
        elementwise("momentum_update")(grad, lr, momentum, 1 - momentum, param, velocity)


def _promoted(*arrays: Array) -> tuple[Array, ...]:
    """``arrays`` in the dtype NumPy's promotion gives them together."""
    return _cast(np.result_type(*(a.dtype for a in arrays)), *arrays)


def _cast(dtype: np.dtype, *arrays: Array) -> tuple[Array, ...]:
    """``arrays`` in ``dtype``; those already in it as they are (no copy)."""
    return tuple(a if a.dtype == dtype else a.astype(dtype) for a in arrays)

"""The CUDA backend through CuPy.

Each device operation is one fused kernel from ``kernels.py`` (strides and
broadcasting handled by CuPy, empty arrays launch nothing), writing into the
arrays given where the operation takes them, with the contracts of ``Backend``,
its dtypes included: inputs of mixed dtypes are cast first, as ``Backend``
documents (to the dtype of the arrays written, for the fused operations of a
planned step), since one kernel type takes them. Scalars travel as kernel arguments, so no operation waits for the
device. Import this module only after ``probe_cuda()`` said a device is usable.
"""
from __future__ import annotations

import cupy
import numpy as np

from .base import Array, Backend, float_rows, row_length
from .kernels import dense_kernel, elementwise


class CupyBackend(Backend):
    name = "cupy"
    xp = cupy
    array_type = cupy.ndarray

    def to_numpy(self, x: Array) -> np.ndarray:
        return cupy.asnumpy(x)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    def sigmoid(self, x: Array, out: Array | None = None) -> Array:
        return elementwise("sigmoid")(x, *_given(out))

    def sigmoid_grad(self, y: Array, gy: Array, out: Array | None = None) -> Array:
        return elementwise("sigmoid_grad")(*_promoted(y, gy), *_given(out))

    def tanh(self, x: Array, out: Array | None = None) -> Array:
        return elementwise("tanh")(x, *_given(out))

    def tanh_grad(self, y: Array, gy: Array, out: Array | None = None) -> Array:
        return elementwise("tanh_grad")(*_promoted(y, gy), *_given(out))

    def relu(self, x: Array, out: Array | None = None) -> Array:
        return elementwise("relu")(x, *_given(out))

    def relu_grad(self, y: Array, gy: Array, out: Array | None = None) -> Array:
        return elementwise("relu_grad")(*_promoted(y, gy), *_given(out))

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

    def update_scratch(self, param: Array) -> None:
        """None: each update is one kernel, with nothing to keep between its parts."""
        return None

    def sgd_update(self, param: Array, grad: Array, lr: float,
                   scratch: Array | None = None) -> None:
        (grad,) = _cast(param.dtype, grad)
        elementwise("sgd_update")(grad, lr, param)

    def momentum_update(self, param: Array, velocity: Array, grad: Array,
                        lr: float, momentum: float, scratch: Array | None = None) -> None:
        (grad,) = _cast(param.dtype, grad)
        elementwise("momentum_update")(grad, lr, momentum, 1 - momentum, param, velocity)

    # -- the fused operations of a planned step (fused.py): one kernel each; gemm
    # is fused.py's own, one cuBLAS call (cupy.matmul takes its transposed views
    # and ``out`` as they are, without copies).
    def dense_forward(self, z: Array, bias: Array, y: Array, *, activation: str | None = None,
                      dropout: tuple[float, float] | None = None,
                      mask: Array | None = None) -> Array:
        z, bias = _cast(y.dtype, z, bias)
        kernel = elementwise(dense_kernel("forward", activation, dropout is not None))
        draws = () if dropout is None else (
            np.uint64(self.key), np.uint64(self.take_counters(z.size)), *dropout)
        kernel(z, bias, *draws, y, *_given(mask))
        return y

    def dense_backward(self, y: Array | None, gy: Array, dz: Array | None, db: Array, *,
                       activation: str | None = None, mask: Array | None = None) -> Array:
        shape = gy.shape[:1] + db.shape  # (N, k): the rows of gy, a column of db each
        y = y if activation else None  # read only for an activation's gradient
        dz = dz if activation or mask is not None else None  # else it would be gy itself
        _require_shapes("dense_backward", shape, gy=gy, y=y, mask=mask, dz=dz)
        inputs = _cast(db.dtype, *(x for x in (y, gy, mask) if x is not None))
        kernel = elementwise(dense_kernel("backward", activation, mask is not None))
        kernel(*inputs, *shape, *_given(dz), db)
        return gy if dz is None else dz

    def dense_softmax_cross_entropy(self, z: Array, bias: Array, a: Array, scale: float,
                                    gradient: Array, losses: Array, hits: Array) -> None:
        operation = "dense_softmax_cross_entropy"
        k = float_rows(operation, z, a)
        _require_shapes(operation, z.shape, gradient=gradient)
        _require_shapes(operation, (k,), bias=bias)
        _require_shapes(operation, z.shape[:-1], losses=losses, hits=hits)
        bias, a = _cast(z.dtype, bias, a)
        elementwise(operation)(z, bias, a, k, scale, losses, hits, gradient)


def _given(out: Array | None) -> tuple[Array, ...]:
    """The output arguments of a kernel call: ``out``, or none (CuPy allocates)."""
    return () if out is None else (out,)


def _require_shapes(operation: str, shape: tuple[int, ...], **arrays: Array | None) -> None:
    """ValueError unless each array given (not None) has ``shape``: the row and
    column kernels index their raw arrays by it, unchecked."""
    for name, array in arrays.items():
        if array is not None and array.shape != shape:
            raise ValueError(f"{operation} needs {name} of shape {shape}, got {array.shape}")


def _promoted(*arrays: Array) -> tuple[Array, ...]:
    """``arrays`` in the dtype NumPy's promotion gives them together."""
    return _cast(np.result_type(*(a.dtype for a in arrays)), *arrays)


def _cast(dtype: np.dtype, *arrays: Array) -> tuple[Array, ...]:
    """``arrays`` in ``dtype``; those already in it as they are (no copy)."""
    return tuple(a if a.dtype == dtype else a.astype(dtype) for a in arrays)

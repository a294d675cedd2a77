"""The CUDA backend through CuPy.

Each device operation is one fused kernel from ``kernels.py`` (strides and
broadcasting handled by CuPy, empty arrays launch nothing), writing into the
arrays given where the operation takes them, with the contracts of ``Backend``,
its dtypes included: inputs of mixed dtypes are cast first, as ``Backend``
documents (to the dtype of the arrays written, for the operations of a
planned step), since one kernel type takes them. Scalars travel as kernel
arguments, so no operation waits for the device. Import this module only
after ``probe_cuda()`` said a device is usable.

Here are the operations any code calls; a planned step's are in
``cupy_planned_step.py``, a graph step's (recorded, captured, bound) in
``cupy_graph_step.py``, each a class mixed in here.
"""
from __future__ import annotations

import cupy
import numpy as np

from .activations import ActivationCall
from .base import Array, Backend, float_rows, row_length
from .cupy_graph_step import CupyGraphStepOperations
from .cupy_planned_step import CupyPlannedStepOperations, cast
from .draw_window import DrawWindow
from .kernels import elementwise


class CupyBackend(CupyGraphStepOperations, CupyPlannedStepOperations, Backend):
    name = "cupy"
    xp = cupy
    array_type = cupy.ndarray

    def to_numpy(self, x: Array) -> np.ndarray:
        return cupy.asnumpy(x)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    def device_count(self) -> int:
        return cupy.cuda.runtime.getDeviceCount()

    def use_device(self, index: int) -> None:
        cupy.cuda.Device(index).use()

    def activate(self, activation: ActivationCall, x: Array, out: Array | None = None) -> Array:
        return elementwise(activation.name)(x, *activation.values, *_given(out))

    def activate_grad(self, activation: ActivationCall, y: Array, gy: Array,
                      out: Array | None = None) -> Array:
        return elementwise(f"{activation.name}_grad")(*_promoted(y, gy), *activation.values,
                                                      *_given(out))

    def softmax_cross_entropy(self, z: Array, a: Array, scale: float) -> tuple[Array, Array]:
        k = float_rows("softmax_cross_entropy", z, a)
        (a,) = cast(z.dtype, a)
        losses, gradient = cupy.empty(z.shape[:-1], z.dtype), cupy.empty(z.shape, z.dtype)
        elementwise("softmax_cross_entropy")(z, a, k, scale, losses, gradient)
        return losses, gradient

    def matches(self, p: Array, t: Array, out: Array | None = None) -> Array:
        k = row_length("matches", p, t)
        out = cupy.empty(p.shape[:-1], bool) if out is None else out
        return elementwise("matches")(p, t, k, out)

    def dropout(self, x: Array, p: float, scale: float,
                window: DrawWindow | None = None) -> tuple[Array, Array]:
        first = np.uint64(self.take_draws(x.shape, window))
        return elementwise("dropout")(x, np.uint64(self.key), first, p, scale)

    def update_scratch(self, param: Array) -> None:
        """None: each update is one kernel, with nothing to keep between its parts."""
        return None

    def sgd_update(self, param: Array, grad: Array, lr: float,
                   scratch: Array | None = None) -> None:
        if grad.dtype != param.dtype:
            grad = grad.astype(param.dtype)
        elementwise("sgd_update")(grad, lr, param)

    def momentum_update(self, param: Array, velocity: Array, grad: Array,
                        lr: float, momentum: float, scratch: Array | None = None) -> None:
        if grad.dtype != param.dtype:
            grad = grad.astype(param.dtype)
        elementwise("momentum_update")(grad, lr, momentum, 1 - momentum, param, velocity)


def _given(out: Array | None) -> tuple[Array, ...]:
    """The output arguments of a kernel call: ``out``, or none (CuPy allocates)."""
    return () if out is None else (out,)


def _promoted(*arrays: Array) -> tuple[Array, ...]:
    """``arrays`` in the dtype NumPy's promotion gives them together."""
    return cast(np.result_type(*(a.dtype for a in arrays)), *arrays)

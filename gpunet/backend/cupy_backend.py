"""The CUDA backend through CuPy.

Each device operation is one fused kernel from ``kernels.py`` (strides and
broadcasting handled by CuPy, empty arrays launch nothing), writing into the
arrays given where the operation takes them, with the contracts of ``Backend``,
its dtypes included: inputs of mixed dtypes are cast first, as ``Backend``
documents (to the dtype of the arrays written, for the operations of a
planned step), since one kernel type takes them. Scalars travel as kernel
arguments, so no operation waits for the device. Import this module only
after ``probe_cuda()`` said a device is usable.

A graph step (``gpunet/planning/graph.py``) is captured as a CUDA graph on a
stream of its own and launched on the current one. Under capture nothing may
allocate (the pool's addresses are baked into the graph) and CuPy's cuBLAS
bindings refuse to run, so the captured products call libcublas itself
(``cublas_capture.py``); where that fails, a small GEMM kernel of
``kernels.py``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import cupy
import numpy as np

from .activations import ActivationCall, activation_call
from .base import FLOAT_DTYPES, Array, Backend, float_rows, row_length
from .cublas_capture import captured_cublas
from .draw_window import DrawWindow
from .graph_step import GraphCaptureError
from .kernels import DENSE_VARIANTS, dense_kernel, elementwise

# dense_kernel's names by its arguments, looked up without a Python call each step
_DENSE_NAMES = {(direction, activation, dropout, from_state):
                dense_kernel(direction, activation, dropout, from_state)
                for direction in ("forward", "backward") for activation, dropout in DENSE_VARIANTS
                for from_state in (False, True)}


class CupyBackend(Backend):
    name = "cupy"
    xp = cupy
    array_type = cupy.ndarray
    GRAPH_GEMMS = ("cuBLAS", "fallback GEMM")
    captured_gemm: str | None = None  # while capturing: the GRAPH_GEMMS entry products use

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
        (a,) = _cast(z.dtype, a)
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

    # -- the operations of a planned step (planned_step.py): one kernel each, with
    # no Python calls of their own on the usual path (dtypes and shapes as
    # expected), as a step's host work is these calls. gemm is products.py's,
    # inline: one cuBLAS call (cupy.matmul takes its transposed views and ``out``
    # as they are, without copies), or the outer product over one row; but
    # under a capture.
    def gemm(self, a: Array, b: Array, out: Array | None = None, *, trans_a: bool = False,
             trans_b: bool = False) -> Array:
        a, b = (a.T if trans_a else a), (b.T if trans_b else b)
        if self.captured_gemm is None:
            return (cupy.multiply if a.shape[1] == 1 else cupy.matmul)(a, b, out=out)
        if self.captured_gemm == "cuBLAS":
            captured_cublas().gemm(a, b, out)
        else:
            elementwise("gemm")(a, b, a.shape[1], b.shape[1], out)
        return out

    def dense_forward(self, z: Array, bias: Array, y: Array, *,
                      activation: str | ActivationCall | None = None,
                      dropout: tuple[float, float] | None = None,
                      mask: Array | None = None,
                      state: tuple[Array, int] | None = None,
                      window: DrawWindow | None = None) -> Array:
        if z.dtype != y.dtype or bias.dtype != y.dtype:
            z, bias = _cast(y.dtype, z, bias)
        call = activation_call(activation) if type(activation) is str else activation
        from_state = dropout is not None and state is not None
        kernel = elementwise(_DENSE_NAMES["forward", call and call.name, dropout is not None,
                                          from_state])
        draws = ()
        if dropout is not None:  # the first counter: the state's (and a skip), or the next
            first = (state[0], np.uint64(state[1])) if from_state else (
                np.uint64(self.take_draws(z.shape, window)),)
            draws = (np.uint64(self.key), *first, *dropout)
        kernel(z, bias, *draws, *(call.values if call else ()),
               *((y,) if mask is None else (y, mask)))
        return y

    def dense_backward(self, y: Array | None, gy: Array, dz: Array | None, db: Array, *,
                       activation: str | ActivationCall | None = None,
                       mask: Array | None = None) -> Array:
        shape = gy.shape[:1] + db.shape  # (N, k): the rows of gy, a column of db each
        y = y if activation else None  # read only for an activation's gradient
        dz = dz if activation or mask is not None else None  # else it would be gy itself
        inputs = (gy,) if y is None else (y, gy)
        inputs = inputs if mask is None else (*inputs, mask)
        written = (db,) if dz is None else (dz, db)
        for array in (*inputs, *written[:-1]):  # loops, not calls: a step's host work
            if array.shape != shape:
                _require_shapes("dense_backward", shape, gy=gy, y=y, mask=mask, dz=dz)
        for array in inputs:
            if array.dtype != db.dtype:
                inputs = _cast(db.dtype, *inputs)
                break
        call = activation_call(activation) if type(activation) is str else activation
        kernel = elementwise(_DENSE_NAMES["backward", call and call.name, mask is not None, False])
        kernel(*inputs, *shape, *(call.values if call else ()), *written)
        return gy if dz is None else dz

    def dense_softmax_cross_entropy(self, z: Array, bias: Array, a: Array, scale: float,
                                    gradient: Array, losses: Array, hits: Array) -> None:
        operation = "dense_softmax_cross_entropy"
        k = z.shape[-1]
        if (z.dtype not in FLOAT_DTYPES or z.ndim != 2 or k == 0 or a.shape != z.shape
                or gradient.shape != z.shape or bias.shape != (k,)
                or losses.shape != z.shape[:-1] or hits.shape != z.shape[:-1]):
            k = float_rows(operation, z, a)
            _require_shapes(operation, z.shape, gradient=gradient)
            _require_shapes(operation, (k,), bias=bias)
            _require_shapes(operation, z.shape[:-1], losses=losses, hits=hits)
        if bias.dtype != z.dtype or a.dtype != z.dtype:
            bias, a = _cast(z.dtype, bias, a)
        elementwise(operation)(z, bias, a, k, scale, losses, hits, gradient)

    # -- a graph step (graph_step.py): the same operations, one kernel each; its
    # kernels' arrays are all raw, so each call says its threads (size=, as
    # cupy/_core/_kernel.pyx, ElementwiseKernel.__call__, requires then) -------
    def gather_rows(self, inputs: Array, targets: Array, order: Array, state: Array,
                    batch_inputs: Array, batch_targets: Array) -> None:
        sizes = (batch_inputs.size, batch_targets.size)
        elementwise("gather_rows")(inputs, targets, order, state, inputs.shape[1],
                                   targets.shape[1], *sizes, batch_inputs, batch_targets,
                                   size=max(sizes))

    def place_and_advance(self, losses: Array, hits: Array, delta: Array, all_losses: Array,
                          all_hits: Array, state: Array) -> None:
        elementwise("place_and_advance")(losses, hits, delta, len(losses), all_losses, all_hits,
                                         state, size=1)

    def capture(self, record: Callable[[], None], gemm: str) -> Callable[[], None]:
        """``record()`` captured as a CUDA graph on a non-blocking stream (CuPy
        refuses the legacy default stream: cupy/cuda/stream.pyx, ``begin_capture``),
        its products through ``gemm``, then launched once; returns
        what launches it again, on the current stream, so it stays in order
        with the eager work there. GraphCaptureError, nothing launched, where
        the capture fails."""
        stream = _capture_stream()
        if gemm == "cuBLAS":
            try:  # outside the capture: loads libcublas, allocates, sets the stream
                captured_cublas().prepare(stream)
            except Exception as exc:  # e.g. a libcublas ctypes cannot open: fall back
                raise GraphCaptureError(f"{gemm}: {type(exc).__name__}: {exc}") from exc
        self.captured_gemm, error = gemm, None
        try:
            with stream:
                try:
                    stream.begin_capture()
                except Exception as exc:  # nothing begun, so nothing to end
                    raise GraphCaptureError(f"{gemm}: {type(exc).__name__}: {exc}") from exc
                try:
                    record()
                except Exception as exc:  # a refused call: the capture is invalid
                    error = exc
                finally:
                    try:
                        graph = stream.end_capture()
                    except cupy.cuda.runtime.CUDARuntimeError as exc:
                        error = error or exc
        finally:
            self.captured_gemm = None
        if error is not None:
            raise GraphCaptureError(f"{gemm}: {type(error).__name__}: {error}") from error
        graph.launch()
        return graph.launch


@functools.cache
def _capture_stream() -> cupy.cuda.Stream:
    return cupy.cuda.Stream(non_blocking=True)


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

"""The CUDA backend through CuPy.

Each device operation is one fused kernel from ``kernels.py`` (strides and
broadcasting handled by CuPy, empty arrays launch nothing), writing into the
arrays given where the operation takes them, with the contracts of ``Backend``,
its dtypes included: inputs of mixed dtypes are cast first, as ``Backend``
documents (to the dtype of the arrays written, for the operations of a
planned step), since one kernel type takes them. Scalars travel as kernel
arguments, so no operation waits for the device. Import this module only
after ``probe_cuda()`` said a device is usable.

A graph step (``gpunet/planning/graph.py``) is recorded: run eagerly
(``run_step``), captured as a CUDA graph on a stream of its own and launched on
the current one (``capture``; its ``aside`` products, and the column sums of
its fused backwards and of its output stage's gradient, and its asking L2 for
the next step's rows, each kind on a stream of its own, branches of the graph), or
bound once and replayed eagerly, the planned step
(``bind``). Under capture nothing may allocate (the pool's addresses are baked
into the graph) and CuPy's cuBLAS bindings refuse to run, so a recorded step's
products call libcublas itself (``cublas_capture.py``), but the small ones
(``_tiled``), which take the tiled GEMM kernel of ``block_kernels/gemm.py``, a hidden
stage's with its forward; where cuBLAS cannot be captured, that kernel takes
them all. A recorded step's elementwise operations are grid kernels, so every
launch of it can be bound.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import cupy
import numpy as np

from . import block_kernels
from .block_kernels import MAX_LOGITS, ROW_STAGES, ROW_WIDTH, TILE, slices, tiles
from .activations import ActivationCall, activation_call
from .base import FLOAT_DTYPES, Array, Backend, float_rows, row_length
from .bound_launch import Bound
from .cublas_capture import BoundGemm, captured_cublas
from .draw_window import DrawWindow
from .graph_step import GraphCaptureError, StateRows
from .kernels import DENSE_VARIANTS, dense_kernel, elementwise
from .planned_step import TargetClasses
from .side_stream import Branches, SideStream

# A recorded step's products that take the tiled GEMM kernel, the rest cuBLAS: sums of
# at most TILED_SUM terms (two rounds of its slices) over at most TILED_THREADS threads
# (one wave of an H200's 132 SMs of 2048). On an H200 (2026-12-04,
# benchmarks/gpu_products.py, the deep and the wide models at batch 128, 256 and 1024)
# those took 1.4-3.7 µs tiled (6.0 for the wide model's 128 x 128 y1 W2^T), 4-7.2 by
# cuBLAS (50 for the wide model's dz3^T y2); the others took 5.8 to 190 µs tiled, more
# than by cuBLAS, but the wide model's dz3^T y2 at batch 1024 (9.4 tiled, 51 by cuBLAS).
TILED_SUM = 256
TILED_THREADS = 1 << 18
# A product reading the batch's rows in place spares cuBLAS's copy of them (1.6-1.8 µs
# at batch 128) and, in a bound step, a launch and a libcublas call (4.6 and 13 µs of
# the H200's host): so it takes sums of up to TILED_ROWS_SUM terms tiled over one wave,
# and sums of up to TILED_SUM over two waves of its own slices (which ``slices`` then
# halves to run in one). There the deep model's x W1^T took 8.0 µs tiled
# against 7.5 by cuBLAS and the copy, its dz1^T x 5.8 against 4.1 and the copy.
TILED_ROWS_SUM = 1024
TILED_ROWS_THREADS = 2 * TILED_THREADS
# The last stage's tiled product, fused into the output stage's one block, where a row's
# logits take at most so many terms in all (a thread's own serial work): the deep
# model's 10 x 10, not the wide model's 10 x 128.
FUSED_OUTPUT_TERMS = 256
# dense_forward's kernel row names by its arguments (activation, dropout, from_state)
_FORWARD_NAMES = {(activation, dropout, from_state):
                  dense_kernel("forward", activation, dropout, from_state)
                  for activation, dropout in DENSE_VARIANTS for from_state in (False, True)}


class CupyBackend(Backend):
    name = "cupy"
    xp = cupy
    array_type = cupy.ndarray
    GRAPH_GEMMS = ("cuBLAS", "fallback GEMM")
    captured_gemm: str | None = None  # while recording: the GRAPH_GEMMS entry products use
    bound: list[Bound] | None = None  # while binding a recorded step (bind): its launches
    side: Branches | None = None  # while capturing: where work aside goes

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
    # few Python calls of their own on the usual path (dtypes and shapes as
    # expected). gemm is products.py's, inline: one cuBLAS call (cupy.matmul
    # takes its transposed views and ``out`` as they are, without copies), or
    # the outer product over one row; but in a recorded step.
    def gemm(self, a: Array, b: Array, out: Array | None = None, *, trans_a: bool = False,
             trans_b: bool = False, aside: bool = False) -> Array:
        if self.captured_gemm is None:  # eager: no StateRows, which only a recorded step takes
            a, b = (a.T if trans_a else a), (b.T if trans_b else b)
            return (cupy.multiply if a.shape[1] == 1 else cupy.matmul)(a, b, out=out)
        rows = type(a) is StateRows or type(b) is StateRows
        k = (a.buffer if type(a) is StateRows else a).shape[0 if trans_a else 1]
        if self.captured_gemm == "cuBLAS" and not _tiled(*out.shape, k, rows):
            a = self.state_rows(a) if type(a) is StateRows else a  # copied into its buffer
            b = self.state_rows(b) if type(b) is StateRows else b
            captured_cublas().gemm((a.T if trans_a else a), (b.T if trans_b else b), out,
                                   self.bound)
            return out
        # the tiled GEMM reads a StateRows in place, from the state's row offset
        state, steps = None, [0, 0]
        if type(a) is StateRows:
            state, steps[0], a = a.state, a.data.shape[1], a.data[:a.batch]
        if type(b) is StateRows:
            state, steps[1], b = b.state, b.data.shape[1], b.data[:b.batch]
        with self._beside("products" if aside else None):
            _tiled_gemm((a.T if trans_a else a), (b.T if trans_b else b), out, state, steps,
                        self.bound)
        return out

    def dense_forward(self, z: Array, bias: Array, y: Array, *,
                      activation: str | ActivationCall | None = None,
                      dropout: tuple[float, float] | None = None,
                      mask: Array | None = None,
                      state: tuple[Array, int] | None = None,
                      window: DrawWindow | None = None) -> Array:
        if z.dtype != y.dtype or bias.dtype != y.dtype:
            z, bias = _cast(y.dtype, z, bias)
        name, draws, values = self._forward(z.shape, activation, dropout, state, window)
        outputs = (y,) if mask is None else (y, mask)
        if self.captured_gemm is None:
            elementwise(name)(z, bias, *draws, *values, *outputs)
        else:  # a recorded step's buffers (C-contiguous): its grid kernel, bound when binding
            t = y.dtype.type
            block_kernels.launch_grid(name, y.dtype, y.size,
                                      (z, bias, *draws, *map(t, values), *outputs),
                                      columns=bias.size, bound=self.bound)
        return y

    def gemm_dense_forward(self, h: Array, w: Array, z: Array, bias: Array, *,
                           activation: str | ActivationCall | None = None,
                           dropout: tuple[float, float] | None = None,
                           mask: Array | None = None,
                           state: tuple[Array, int] | None = None,
                           window: DrawWindow | None = None) -> Array:
        rows = type(h) is StateRows
        if (self.captured_gemm is None or bias.dtype != z.dtype or (
                self.captured_gemm == "cuBLAS" and not _tiled(*z.shape, w.shape[1], rows))):
            return super().gemm_dense_forward(h, w, z, bias, activation=activation,
                                              dropout=dropout, mask=mask, state=state,
                                              window=window)
        # a recorded step's tiled product, its dense forward fused (block_kernels.FUSED_ROWS)
        name, draws, values = self._forward(z.shape, activation, dropout, state, window)
        a, steps = (h.data[:h.batch], [h.data.shape[1], 0]) if rows else (h, [0, 0])
        t = z.dtype.type
        _tiled_gemm(a, w.T, z, h.state if rows else None, steps, self.bound,
                    (name, (bias, *draws, *map(t, values), *(() if mask is None else (mask,)))))
        return z

    def _forward(self, shape: tuple[int, ...], activation: str | ActivationCall | None,
                 dropout: tuple[float, float] | None, state: tuple[Array, int] | None,
                 window: DrawWindow | None) -> tuple[str, tuple, tuple]:
        """A dense forward's (kernel row name, draws: the key and first counter,
        the state's and a skip or this backend's next, then its other scalars:
        dropout's (p, scale) and the activation's)."""
        call = activation_call(activation) if type(activation) is str else activation
        from_state = dropout is not None and state is not None
        draws: tuple = ()
        if dropout is not None:
            draws = (state[0], np.uint64(state[1])) if from_state else (
                np.uint64(self.key), np.uint64(self.take_draws(shape, window)))
        return (_FORWARD_NAMES[call and call.name, dropout is not None, from_state], draws,
                (*(dropout or ()), *(call.values if call else ())))

    def dense_backward(self, y: Array | None, gy: Array, dz: Array | None, db: Array, *,
                       activation: str | ActivationCall | None = None,
                       mask: Array | None = None) -> Array:
        shape, given = gy.shape[:1] + db.shape, gy  # (N, k): gy's rows, a column of db each
        y = y if activation else None  # read only for an activation's gradient
        dz = dz if activation or mask is not None else None  # else it would be gy itself
        for array in (y, gy, mask, dz):  # loops, not calls: a step's host work
            if array is not None and (array.shape != shape or not array.flags.c_contiguous):
                _require_shapes("dense_backward", shape, gy=gy, y=y, mask=mask, dz=dz)
                _require_contiguous("dense_backward", dz=dz)
                y, gy, mask = (None if x is None else cupy.ascontiguousarray(x)
                               for x in (y, gy, mask))
                break
        if not db.flags.c_contiguous:
            _require_contiguous("dense_backward", db=db)
        if gy.dtype != db.dtype or (y is not None and y.dtype != db.dtype) or (
                mask is not None and mask.dtype != db.dtype):
            y, gy, mask = (None if x is None else x.astype(db.dtype) for x in (y, gy, mask))
        call = activation_call(activation) if type(activation) is str else activation
        block_kernels.dense_backward(gy, db, y=y, mask=mask, dz=dz,
                                     activation=call and call.name,
                                     values=call.values if call else (), bound=self.bound)
        return given if dz is None else dz

    def gemm_dense_backward(self, g: Array, w: Array, gy: Array, y: Array | None,
                            dz: Array | None, db: Array, *,
                            activation: str | ActivationCall | None = None,
                            mask: Array | None = None) -> Array:
        call = activation_call(activation) if type(activation) is str else activation
        y = y if call else None  # as dense_backward reads them
        dz = dz if call or mask is not None else None
        shape = gy.shape[:1] + db.shape
        if (self.captured_gemm is None or (self.captured_gemm == "cuBLAS"
                                           and not _tiled(*gy.shape, g.shape[1], False))
                or any(x is not None and (x.shape != shape or x.dtype != db.dtype
                                          or not x.flags.c_contiguous) for x in (gy, y, mask, dz))
                or not db.flags.c_contiguous):
            return super().gemm_dense_backward(g, w, gy, y, dz, db, activation=call, mask=mask)
        # a recorded step's tiled product, giving dz too (block_kernels.BACKWARD_ROWS) where
        # there is one; the column sums, which only the update reads, aside
        epilogue = None if dz is None else (
            dense_kernel("backward", call and call.name, mask is not None),
            (*((y,) if call else ()), *(() if mask is None else (mask,)),
             *map(db.dtype.type, call.values if call else ()), dz))
        _tiled_gemm(g, w, gy, None, [0, 0], self.bound, epilogue)
        self._column_sums((gy if dz is None else dz, db))
        return gy if dz is None else dz

    def _column_sums(self, *sums: tuple[Array, Array]) -> None:
        """Each (gradient, db) of ``sums``: db = the gradient's column sums, a
        bias gradient, which only the update reads (dense_backward's kernel);
        while capturing, aside on the sums' branch."""
        with self._beside("sums"):
            for gradient, db in sums:
                block_kernels.dense_backward(gradient, db, bound=self.bound)

    def _beside(self, branch: str | None) -> contextlib.AbstractContextManager:
        """Where work aside of kind ``branch`` ("products", "sums", "ahead"; None: none)
        goes: forked onto that branch's stream while capturing
        (``side_stream.py``), else on the current stream."""
        if branch is not None and self.side is not None:
            return getattr(self.side, branch).fork(cupy.cuda.get_current_stream())
        return contextlib.nullcontext()

    def target_classes(self, a: Array, batch: int) -> None:
        """None: the output stage's kernel reads each target row whole, and
        finding the classes would read a result back to the host."""
        return None

    def dense_softmax_cross_entropy(self, z: Array, bias: Array, a: Array, scale: float,
                                    gradient: Array, losses: Array, hits: Array, db: Array,
                                    state: Array | None = None,
                                    classes: TargetClasses | None = None,
                                    product: tuple[Array, Array] | None = None) -> None:
        # classes: always None here (target_classes), the kernel reading each target row;
        # product: (h, w), z = h w^T first (gemm_dense_softmax_cross_entropy)
        operation = "dense_softmax_cross_entropy"
        k = z.shape[-1]
        rows = z.shape[:1] if state is None else a.shape[:1]  # the epoch's, with a state
        if (z.dtype not in FLOAT_DTYPES or z.ndim != 2 or k == 0 or a.shape != rows + (k,)
                or gradient.shape != z.shape or bias.shape != (k,) or db.shape != (k,)
                or losses.shape != rows or hits.shape != rows):
            if state is None:
                k = float_rows(operation, z, a)
            _require_shapes(operation, z.shape, gradient=gradient)
            _require_shapes(operation, rows + (k,), a=a)
            _require_shapes(operation, (k,), bias=bias, db=db)
            _require_shapes(operation, rows, losses=losses, hits=hits)
        if bias.dtype != z.dtype or a.dtype != z.dtype:
            bias, a = _cast(z.dtype, bias, a)
        if not (z.flags.c_contiguous and bias.flags.c_contiguous and a.flags.c_contiguous):
            z, bias, a = (cupy.ascontiguousarray(x) for x in (z, bias, a))
        _require_contiguous(operation, gradient=gradient, losses=losses, hits=hits, db=db)
        aside = self.side is not None  # capturing: db, which only the update reads, aside
        block_kernels.dense_softmax_cross_entropy(z, bias, a, scale, gradient, losses, hits,
                                                  None if aside else db, state=state,
                                                  product=product, bound=self.bound)
        if aside:
            self._column_sums((gradient, db))

    def gemm_dense_softmax_cross_entropy(self, h: Array, w: Array, z: Array, bias: Array,
                                         a: Array, scale: float, gradient: Array,
                                         losses: Array, hits: Array, db: Array,
                                         state: Array | None = None,
                                         classes: TargetClasses | None = None) -> None:
        (rows, k), depth = z.shape, w.shape[-1]
        if (self.captured_gemm is None or type(h) is StateRows or k > MAX_LOGITS
                or k * depth > FUSED_OUTPUT_TERMS
                or (self.captured_gemm == "cuBLAS" and not _tiled(rows, k, depth, False))
                or h.shape != (rows, depth) or w.shape != (k, depth)
                or any(x.dtype != z.dtype or not x.flags.c_contiguous
                       for x in (h, w, z, bias, a, gradient, db))):
            return super().gemm_dense_softmax_cross_entropy(h, w, z, bias, a, scale, gradient,
                                                            losses, hits, db, state, classes)
        # a recorded step's tiled product, fused into the output stage: each row's logits
        self.dense_softmax_cross_entropy(z, bias, a, scale, gradient, losses, hits, db, state,
                                         classes, product=(h, w))

    def dense_passes(self, x: Array, forwards: list[tuple], output: tuple,
                     backwards: list[tuple], state: Array | None = None,
                     classes: TargetClasses | None = None,
                     window: DrawWindow | None = None) -> Array:
        if not self._row_chain(forwards, output, backwards, state, window):
            return super().dense_passes(x, forwards, output, backwards, state, classes, window)
        # a recorded step: the first stage, then the rest row by row (block_kernels/rows.py),
        # the column sums, which only the update reads, aside
        h = self.stage_forward(x, forwards[0], state, window)
        block_kernels.dense_rows(h, forwards[1:], output, backwards, state, bound=self.bound)
        self.read_ahead(x, output[3])
        sums = [(output[5], output[8]),
                *((gy if dz is None else dz, db) for _, _, gy, dz, db, _, _ in backwards)]
        self._column_sums(*sums)
        return sums[-1][0]

    def _row_chain(self, forwards: list[tuple], output: tuple, backwards: list[tuple],
                   state: Array | None, window: DrawWindow | None) -> bool:
        """Whether ``dense_passes`` takes the row chain: in a recorded step of one
        process, with at most ROW_STAGES hidden stages, they and the logits at
        most ROW_WIDTH wide, every product of it one that would take the tiled
        kernel, and its arrays as the plan makes them."""
        if self.captured_gemm is None or state is None or window is not None or not backwards:
            return False
        w, logits, bias, a, _, gradient, _, _, db = output
        widths = [gy.shape[1] for _, _, gy, *_ in reversed(backwards)] + [logits.shape[1]]
        products = [*zip(widths[1:], widths[:-1]), *zip(widths[:-1], widths[1:])]
        arrays = [w, logits, bias, a, gradient, db,  # and each stage's w, z, bias, mask; ...
                  *(x for forward in forwards[1:] for x in (*forward[:3], forward[4])),
                  # ... w above, y, gy, dz, db, mask
                  *(x for backward in backwards for x in (*backward[:5], backward[6]))]
        return (max(widths) <= ROW_WIDTH and len(backwards) <= ROW_STAGES
                and (self.captured_gemm != "cuBLAS"
                     or all(_tiled(len(logits), n, k, False) for n, k in products))
                and all(x is None or (x.dtype == logits.dtype and x.flags.c_contiguous)
                        for x in arrays))

    # -- a graph step (graph_step.py): the same operations, one kernel each, a
    # grid kernel for the elementwise ones (block_kernels/grid.py), bound when binding
    def state_rows(self, rows: StateRows) -> Array:
        """The rows ``rows`` names, copied into its buffer by one kernel that reads
        the offset on the device when it runs."""
        data, buffer = rows.data, rows.buffer
        block_kernels.launch_grid("state_rows", buffer.dtype, buffer.size,
                                  (data, rows.state, np.int64(data.shape[1]), buffer),
                                  bound=self.bound)
        return buffer

    def read_ahead(self, x: Array, targets: Array) -> None:
        """While capturing, one kernel on a branch of its own asks L2 for the next
        step's rows of x's data and of the targets (block_kernels/ahead.py), so
        that step's first product waits on L2, not on memory; else nothing: in a
        bound step its launch would cost the host more than the device gains."""
        if self.side is None or type(x) is not StateRows:
            return
        data = x.data
        if (targets.dtype != data.dtype or targets.ndim != 2 or len(targets) != len(data)
                or not targets.flags.c_contiguous):
            return  # a hint: not for arrays the kernel would read wrong
        with self._beside("ahead"):
            block_kernels.read_ahead(data, targets, x.state, x.batch)

    def update_and_advance(self, param: Array, grad: Array, velocity: Array | None,
                           rates: Array, scratch: Array, state: Array, delta: Array) -> None:
        if self.side is not None:  # the work captured aside is done first
            self.side.join(cupy.cuda.get_current_stream())
        name = "sgd_update_and_advance" if velocity is None else "momentum_update_and_advance"
        block_kernels.launch_grid(name, param.dtype, param.size,
                                  (grad, rates, delta, param,
                                   *(() if velocity is None else (velocity,)), state),
                                  bound=self.bound)

    def run_step(self, record: Callable[[], None]) -> None:
        """``record()`` run as a capture would run it, its products through
        libcublas with the handle's stream and workspace set once, so the
        graph's products and these are the same calls; where libcublas cannot
        be readied (loaded, its workspace set), all by the tiled GEMM kernel, as
        the fallback GEMM's capture makes them."""
        try:
            captured_cublas().prepare(cupy.cuda.get_current_stream())
            self.captured_gemm = "cuBLAS"
        except Exception:  # e.g. a libcublas ctypes cannot open: capture says why
            self.captured_gemm = "fallback GEMM"
        try:
            record()
        finally:
            self.captured_gemm = None

    def bind(self, record: Callable[[], None]) -> Callable[[], None]:
        """``record()`` run as ``run_step`` runs it, each kernel launch and
        libcublas call bound once with its arguments (bound_launch.py); returns
        what makes them again, in order, on the current stream (the cuBLAS
        handle's set to it first, if there are libcublas calls): the same
        calls, no Python but a loop of launches."""
        self.bound = bound = []
        try:
            self.run_step(record)
        finally:
            self.bound = None
        cublas = captured_cublas() if any(type(call) is BoundGemm for call in bound) else None

        def replay() -> None:
            stream = cupy.cuda.get_current_stream()
            if cublas is not None:
                cublas.prepare(stream)
            for launch in bound:
                launch(stream.ptr)
        return replay

    def capture(self, record: Callable[[], None], gemm: str) -> Callable[[], None]:
        """``record()`` captured as a CUDA graph on a non-blocking stream (CuPy
        refuses the legacy default stream: cupy/cuda/stream.pyx, ``begin_capture``),
        its products through ``gemm``, then launched once; returns
        what launches it again, on the current stream, so it stays in order
        with the eager work there. GraphCaptureError, nothing launched, where
        the capture fails."""
        stream, side = _capture_stream(), _side_streams()
        if gemm == "cuBLAS":
            try:  # outside the capture: loads libcublas, allocates, sets the stream
                captured_cublas().prepare(stream)
            except Exception as exc:  # e.g. a libcublas ctypes cannot open: fall back
                raise GraphCaptureError(f"{gemm}: {type(exc).__name__}: {exc}") from exc
        self.captured_gemm, self.side, error = gemm, side, None
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
        finally:  # a capture that failed may have forked without joining: forget it
            self.captured_gemm, self.side = None, None
            side.forget()
        if error is not None:
            raise GraphCaptureError(f"{gemm}: {type(error).__name__}: {error}") from error
        graph.launch()
        return graph.launch


def _tiled(m: int, n: int, k: int, rows: bool) -> bool:
    """Whether a recorded step's (m, k) (k, n) product takes the tiled GEMM kernel
    on the cuBLAS path; ``rows``: it reads a batch's rows (a StateRows)."""
    threads = tiles(m, n) * TILE * TILE * slices(k)
    if rows and k <= TILED_SUM:
        return threads <= TILED_ROWS_THREADS
    return k <= (TILED_ROWS_SUM if rows else TILED_SUM) and threads <= TILED_THREADS


def _tiled_gemm(a: Array, b: Array, out: Array, state: Array | None, steps: list[int],
                bound: list[Bound] | None, epilogue: tuple[str, tuple] | None = None) -> None:
    """out = a b by the tiled GEMM kernel, each of ``a`` and ``b`` read as it
    lies or transposed; an operand with a row length in ``steps`` (a graph
    step's batch) starts at row state[OFFSET]; ``epilogue``: block_kernels.gemm's."""
    given = []
    for x in (a, b):
        transposed = not x.flags.c_contiguous and x.T.flags.c_contiguous
        given.append((x.T if transposed else cupy.ascontiguousarray(x), transposed))
    (a, trans_a), (b, trans_b) = given
    block_kernels.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, state=state,
                       a_step=steps[0], b_step=steps[1], epilogue=epilogue, bound=bound)


@functools.cache
def _capture_stream() -> cupy.cuda.Stream:
    return cupy.cuda.Stream(non_blocking=True)


@functools.cache
def _side_streams() -> Branches:
    return Branches(*(SideStream(cupy.cuda.Stream(non_blocking=True),
                                 cupy.cuda.Event(disable_timing=True),
                                 cupy.cuda.Event(disable_timing=True)) for _ in Branches._fields))


def _given(out: Array | None) -> tuple[Array, ...]:
    """The output arguments of a kernel call: ``out``, or none (CuPy allocates)."""
    return () if out is None else (out,)


def _require_shapes(operation: str, shape: tuple[int, ...], **arrays: Array | None) -> None:
    """ValueError unless each array given (not None) has ``shape``: the row and
    column kernels index their raw arrays by it, unchecked."""
    for name, array in arrays.items():
        if array is not None and array.shape != shape:
            raise ValueError(f"{operation} needs {name} of shape {shape}, got {array.shape}")


def _require_contiguous(operation: str, **arrays: Array | None) -> None:
    """ValueError unless each array given (not None) is C-contiguous: a block
    kernel writes it through a plain pointer."""
    for name, array in arrays.items():
        if array is not None and not array.flags.c_contiguous:
            raise ValueError(f"{operation} writes {name} in place and needs it C-contiguous, "
                             f"got strides {array.strides}")


def _promoted(*arrays: Array) -> tuple[Array, ...]:
    """``arrays`` in the dtype NumPy's promotion gives them together."""
    return _cast(np.result_type(*(a.dtype for a in arrays)), *arrays)


def _cast(dtype: np.dtype, *arrays: Array) -> tuple[Array, ...]:
    """``arrays`` in ``dtype``; those already in it as they are (no copy)."""
    return tuple(a if a.dtype == dtype else a.astype(dtype) for a in arrays)

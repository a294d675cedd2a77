"""CupyBackend's operations of a planned step (``planned_step.py``): one kernel each.

Each has few Python calls of its own on the usual path (dtypes and shapes as
expected). Eagerly, ``gemm`` is products.py's, inline: one cuBLAS call
(``cupy.matmul`` takes its transposed views and ``out`` as they are, without
copies), or the outer product over one row. In a recorded step
(``cupy_graph_step.py``) the small products (``_tiled``) take the tiled GEMM
kernel of ``block_kernels/gemm.py``, a hidden stage's with its forward and a
stage's input gradient with the backward below it; the others call libcublas
itself (``cublas_capture.py``), or, where cuBLAS cannot be captured, that kernel
takes them all; the elementwise operations are grid kernels; and a model's
narrow stages past the first are one kernel (``dense_passes``, the row chain).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import cupy
import numpy as np

from . import block_kernels
from .activations import ActivationCall, activation_call
from .base import FLOAT_DTYPES, Array, float_rows
from .block_kernels import MAX_LOGITS, ROW_STAGES, ROW_WIDTH, TILE, slices, tiles
from .bound_launch import Bound
from .cublas_capture import captured_cublas
from .draw_window import DrawWindow
from .graph_step import StateRows
from .kernels import DENSE_VARIANTS, dense_kernel, elementwise
from .planned_step import TargetClasses

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


class CupyPlannedStepOperations:
    """Mixed into ``CupyBackend``, before ``Backend``, whose operations of the same
    names they call where they do not apply."""

    key: int
    take_draws: Callable[..., int]
    captured_gemm: str | None  # CupyGraphStepOperations': while recording, its GEMM
    bound: list[Bound] | None  # ... while binding, its launches
    _beside: Callable[[str | None], contextlib.AbstractContextManager]
    state_rows: Callable[[StateRows], Array]
    stage_forward: Callable[..., Array]  # PlannedStepOperations'
    read_ahead: Callable[[Array, Array], None]

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
            z, bias = cast(y.dtype, z, bias)
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
        while capturing, each aside on a branch of the sums' own."""
        for gradient, db in sums:
            with self._beside("sums"):
                block_kernels.dense_backward(gradient, db, bound=self.bound)

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
            bias, a = cast(z.dtype, bias, a)
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


def cast(dtype: np.dtype, *arrays: Array) -> tuple[Array, ...]:
    """``arrays`` in ``dtype``; those already in it as they are (no copy)."""
    return tuple(a if a.dtype == dtype else a.astype(dtype) for a in arrays)

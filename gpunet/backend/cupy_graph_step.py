"""CupyBackend's operations of a graph step (``graph_step.py``): recorded, then
captured, bound or run eagerly.

A graph step (``gpunet/planning/graph.py``) is recorded: run eagerly
(``run_step``), captured as a CUDA graph on a stream of its own and launched on
the current one (``capture``; its ``aside`` products, the column sums of its
fused backwards and of its output stage's gradient, and its asking L2 for the
next step's rows, each on a side stream of its kind, branches of the graph:
``_beside``), or bound once and replayed eagerly, the planned step (``bind``).
Under capture nothing may allocate (the pool's addresses are baked into the
graph) and CuPy's cuBLAS bindings refuse to run, so a recorded step's products
call libcublas itself, or take the tiled GEMM kernel (``cupy_planned_step.py``).
A recorded step's elementwise operations are grid kernels, so every launch of it
can be bound.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import cupy
import numpy as np

from . import block_kernels
from .base import Array
from .bound_launch import Bound
from .cublas_capture import BoundGemm, captured_cublas
from .graph_step import GraphCaptureError, StateRows
from .side_stream import Branches, SidePool, SideStream


class CupyGraphStepOperations:
    """Mixed into ``CupyBackend``: the same operations, one kernel each, a grid
    kernel for the elementwise ones (block_kernels/grid.py), bound when binding."""

    GRAPH_GEMMS = ("cuBLAS", "fallback GEMM")
    # A capture's side streams for each field of Branches: the deep step's 2 products
    # aside, its 3 column sums, reading ahead (side_stream.py).
    SIDE_STREAMS: tuple[int, ...] = (2, 3, 1)
    captured_gemm: str | None = None  # while recording: the GRAPH_GEMMS entry products use
    bound: list[Bound] | None = None  # while binding a recorded step (bind): its launches
    side: Branches | None = None  # while capturing: where work aside goes

    def state_rows(self, rows: StateRows) -> Array:
        """The rows ``rows`` names, copied into its buffer by one kernel that reads
        the offset on the device when it runs."""
        data, buffer = rows.data, rows.buffer
        block_kernels.launch_grid("state_rows", buffer.dtype, buffer.size,
                                  (data, rows.state, np.int64(data.shape[1]), buffer),
                                  bound=self.bound)
        return buffer

    def read_ahead(self, x: Array, targets: Array) -> None:
        """In a recorded step, one kernel asks L2 for the next step's rows of x's
        data and of the targets (block_kernels/ahead.py), so that step's first
        product waits on L2, not on memory: while capturing on a branch of its
        own; run eagerly (the step before the capture, which so builds it), on
        the current stream. Bound, nothing: there its launch would cost the host
        more than the device gains."""
        if self.captured_gemm is None or self.bound is not None or type(x) is not StateRows:
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
        stream, side = _capture_stream(), _side_streams(self.SIDE_STREAMS)
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

    def _beside(self, branch: str | None) -> contextlib.AbstractContextManager:
        """Where work aside of kind ``branch`` ("products", "sums", "ahead"; None: none)
        goes: forked onto a free side stream of that kind while capturing
        (``side_stream.py``), else on the current stream."""
        if branch is not None and self.side is not None:
            return getattr(self.side, branch).fork(cupy.cuda.get_current_stream())
        return contextlib.nullcontext()


@functools.cache
def _capture_stream() -> cupy.cuda.Stream:
    return cupy.cuda.Stream(non_blocking=True)


@functools.cache
def _side_streams(sizes: tuple[int, ...]) -> Branches:
    """Branches of ``sizes`` streams (each with its two events), made once a process."""
    return Branches(*(SidePool([SideStream(cupy.cuda.Stream(non_blocking=True),
                                           cupy.cuda.Event(disable_timing=True),
                                           cupy.cuda.Event(disable_timing=True))
                                for _ in range(size)]) for size in sizes))

"""A planned step replayed as a graph: what varies per step lives on the device.

At the start of an epoch the step takes the epoch's inputs and targets in its
order into buffers of its own (one gather an epoch; without an order it reads
them as they are), and has arrays of its own
for each sample's loss and hit (``GraphStep`` lends them to the epoch's
metrics). Each step then reads its
rows, its dropout counter and key from a state on the device, trains
(``StepPlan.run``), places its losses and hits at its offset, and updates with
the optimizer's rates, also on the device, advancing the state
(``update_and_advance``): so one recording serves every full batch of every
epoch. Beside it, a captured step asks the device's cache for the next step's
rows (``read_ahead``). After a warm-up step through the plan (which makes the
optimizer's state) and one recorded step run eagerly (which makes what a capture may not:
compiled kernels, cuBLAS's calls' arguments), the backend captures it
(``capture``: a CUDA graph on CuPy; on NumPy calls bound once, its stages in C,
or the recorded calls), once per run: again only when the epoch's size changes
or a value baked into the capture does (``StepPlan.baked``: dropout p, the
optimizer's state arrays). A changed learning rate, momentum, random key or
counter is written to the device (one small copy, only then). Where the graph
is not wanted (``graph_gemms``), the same recording is bound once and run eagerly
as the planned step (``Backend.bind``: on CuPy its launches with their arguments
built once).
The host keeps its own counters in step by arithmetic, so the tail batch, run
by a plan of its own (``PlannedStep``), draws where it would have.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..backend import Array, Backend
from ..backend.graph_step import (COUNTER, KEY, STATE_SIZE, GraphCaptureError, Replay,
                                  StateRows, graph_state)
from ..backend.planned_step import TargetClasses
from ..layers import Layer
from .step import StepPlan

MODES = ("on", "off", "auto")
# What --graph auto does on CuPy: replay as a CUDA graph, since scripts/gpu_check.sh
# showed graph replay equal to the eager planned step bit for bit on an H200 (2026-12-04).
AUTO_ON_CUPY = True


def check_mode(graph: Any) -> str:
    """``graph`` if it is one of MODES; ValueError otherwise."""
    if graph not in MODES:
        raise ValueError(f"graph must be one of {', '.join(MODES)}, got {graph!r}")
    return graph


def graph_gemms(graph: str, backend: Backend) -> tuple[str, ...]:
    """The GRAPH_GEMMS mode ``graph`` tries on ``backend``, in order (none: the
    planned step runs): all of them "on"; "auto", the backend's AUTO_GRAPH_GEMMS
    (NumPy's host replay, bit for bit the planned step) and, once AUTO_ON_CUPY,
    CuPy's CUDA graph."""
    mode = check_mode(graph)
    if mode == "on" or (mode == "auto" and AUTO_ON_CUPY and backend.name == "cupy"):
        return backend.GRAPH_GEMMS
    return backend.AUTO_GRAPH_GEMMS if mode == "auto" else ()


def explain_auto_graph() -> str:
    """One line: what ``--graph auto`` does, and why."""
    host = ("on numpy each full batch's step is replayed as calls bound once, its stages "
            "compiled C (needs a C compiler, cc or $CC; without one it runs as planned)")
    if AUTO_ON_CUPY:
        return (f"--graph auto (train's default): {host}; on cupy it is replayed as a CUDA "
                "graph")
    return (f"--graph auto (train's default): {host}; on cupy it runs without a CUDA graph "
            "(graph replay is not yet switched on for cupy: it has not passed its parity "
            "check on a GPU, scripts/gpu_check.sh; --graph on uses it now)")


class StepGraph:
    """``plan``'s step with its per-step values on the device: the epoch's
    inputs, targets, losses and hits, the state (uint64: the step's first row in
    the epoch's order, its first dropout counter, the key), the optimizer's
    rates, and the captured step."""

    def __init__(self, plan: StepPlan, gemms: tuple[str, ...]) -> None:
        b, batch = plan.backend, plan.batch
        self.plan, self.backend, self.gemms = plan, b, gemms
        self.x: Array | None = None  # the epoch's inputs in its order, then targets, ...
        self.y = self.losses = self.hits = self.batch_rows = None
        self.classes: TargetClasses | None = None  # the targets', when one-hot
        self.gathered: tuple[Array, Array] | None = None  # the buffers an order is taken into
        self.state = b.xp.zeros(STATE_SIZE, np.uint64)
        self.delta = b.xp.asarray(graph_state(offset=batch, counter=plan.counters, key=0))
        self.rates = b.xp.zeros(3, plan.dtype)
        self.written: tuple = (None, None, None)  # the rates, counter and key on the device
        self.scratch = b.xp.empty_like(plan.flat.pair[0])  # the update's products
        # the warm-up through the plan, then a recorded step run eagerly, done; the replay
        self.warm, self.recorded, self.replay = False, False, None
        self.baked: tuple[tuple, list[Array]] = ((), [])  # plan.baked() for this step
        self.path = "planned"  # until a capture succeeds

    def start_epoch(self, x: Array, y: Array, order: Array | None) -> None:
        """Take the epoch's data ``x``, ``y`` (in the plan's dtype) in ``order``
        (gathered into buffers of its own, kept from epoch to epoch), or, without
        an order, as they are (C-contiguous); and set the state to row 0, the
        backend's next counter and its key (one small copy to the device). New
        arrays to read, or of another size, mean a new capture."""
        b, xp = self.backend, self.backend.xp
        if order is None:
            data = xp.ascontiguousarray(x), xp.ascontiguousarray(y)
        else:
            data = self.gathered
            if data is None or data[0].shape != x.shape or data[1].shape != y.shape:
                data = self.gathered = b.empty(x.shape, x.dtype), b.empty(y.shape, y.dtype)
            xp.take(x, order, axis=0, out=data[0])
            xp.take(y, order, axis=0, out=data[1])
        if data[0] is not self.x or data[1] is not self.y:
            self.x, self.y = data
            self.batch_rows = StateRows(self.x, self.state, self.plan.batch,
                                        xp.empty((self.plan.batch,) + x.shape[1:], x.dtype))
            self.replay = None  # the captured step holds the arrays it read
        self._find_classes()
        if self.losses is None or len(self.losses) != len(x):
            self.losses, self.hits = xp.empty(len(x), "float64"), xp.empty(len(x), bool)
            self.replay = None
        self.state[...] = xp.asarray(graph_state(0, b.drawn, b.key))
        self.written = (self.written[0], b.drawn, b.key)

    def _find_classes(self) -> None:
        """The epoch's targets as classes where they are one-hot, in arrays kept
        from epoch to epoch (a capture reads them); a change between one-hot and
        not means a new capture."""
        found, kept = self.backend.target_classes(self.y, self.plan.batch), self.classes
        if found is not None and kept is not None and found.picks.shape == kept.picks.shape:
            kept.classes[...], kept.picks[...] = found.classes, found.picks
        elif found is not None or kept is not None:
            self.classes, self.replay = found, None

    def rows(self, rows: slice) -> tuple[Array, Array]:
        """The inputs and targets at positions ``rows`` of the epoch's order."""
        return self.x[rows], self.y[rows]

    def step(self, rows: slice) -> None:
        """The full batch ``rows``: through the plan the first time, then
        recorded: captured once and replayed, or run as it is."""
        b, plan = self.backend, self.plan
        if not self.warm:
            plan.run(self.x[rows], self.y[rows], self.losses[rows], self.hits[rows])
            b.xp.add(self.state, self.delta, out=self.state)
            self.written, self.warm = (self.written[0], b.drawn, b.key), True
            return
        self._write(plan.rates(), b.drawn, b.key)
        baked = plan.baked()  # what the capture took as it found it: unchanged since?
        if self.replay is not None and not (baked[0] == self.baked[0]
                                            and _identical(baked[1], self.baked[1])):
            self.replay = None
        self.baked = baked
        if self.replay is not None:
            self.replay()
        elif self.recorded:  # captured, or with no GEMM to capture with, bound (``capture``)
            self.replay, self.path = capture(b, self.record, self.gemms)
        else:  # eagerly, the first time
            b.run_step(self.record)
            self.recorded = True
        b.take_counters(plan.counters)
        self.written = (self.written[0], b.drawn, b.key)

    def _write(self, rates: tuple[float, ...], counter: int, key: int) -> None:
        """Put on the device what changed since it was last written: the
        optimizer's rates, or the backend's counter and key (drawn from, or
        restarted, elsewhere since)."""
        xp = self.backend.xp
        if rates != self.written[0]:
            self.rates[:len(rates)] = xp.asarray(np.array(rates, self.plan.dtype))
        if (counter, key) != self.written[1:]:
            self.state[COUNTER:KEY + 1] = xp.asarray(np.array([counter, key], np.uint64))
        self.written = (rates, counter, key)

    def record(self) -> None:
        """The step's backend operations, every per-step value read from the device."""
        b, plan = self.backend, self.plan
        plan.run(self.batch_rows, self.y, self.losses, self.hits, state=self.state,
                 dropouts=self.baked[0], classes=self.classes)
        param, grad = plan.flat.pair
        state = plan.optimizer.state()
        b.update_and_advance(param, grad, state[0] if state else None, self.rates, self.scratch,
                             self.state, self.delta)


def capture(backend: Backend, record: Replay, gemms: tuple[str, ...]) -> tuple[Replay, str]:
    """(replay, path): ``record`` captured with the first of ``gemms`` (the
    backend's GRAPH_GEMMS) that captures, and run once; when none does (or
    none is given), bound and run once (``Backend.bind``: the planned step,
    eagerly each time). The path names the GEMM, or "planned", and why each
    tried before it failed."""
    failed: list[str] = []
    for gemm in gemms:
        try:
            replay = backend.capture(record, gemm)
        except GraphCaptureError as exc:
            failed.append(str(exc))
            continue
        return replay, f"graph ({'; '.join([gemm, *failed])})"
    return backend.bind(record), "planned" + (f" ({'; '.join(failed)})" if failed else "")


def _identical(first: tuple | list, second: tuple | list) -> bool:
    """Whether two sequences hold the same objects, one by one."""
    return len(first) == len(second) and all(a is b for a, b in zip(first, second))


def step_graph(plan: StepPlan, gemms: tuple[str, ...]) -> StepGraph:
    """``plan``'s StepGraph, captured with ``gemms`` (none: not captured), made
    on first use and kept with the plan's model (which the plan and graph hold
    only weakly) while its plan and ``gemms`` stay the same."""
    model = plan.model()
    graph = _GRAPHS.get(model)
    if graph is None or graph.plan is not plan or graph.gemms != gemms:
        graph = _GRAPHS[model] = StepGraph(plan, gemms)
    return graph


_GRAPHS: weakref.WeakKeyDictionary[Layer, StepGraph] = weakref.WeakKeyDictionary()

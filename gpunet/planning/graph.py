"""A planned step replayed as a graph: what varies per step lives on the device.

The step gathers its batch, rows order[offset:offset + B] of the epoch's data,
into buffers of its own, runs ``StepPlan.run`` with its dropout counters read
from the same state, places each sample's loss and hit at the offset in the
epoch's metrics, and advances the state (offset += B, counter += the step's
draws): so one recording of it serves every full batch of an epoch. After one
eager warm-up step, the backend captures it (``capture``: a CUDA graph on CuPy,
the recorded calls on NumPy); an epoch whose arrays differ captures again, and
so does a step whose host values baked into the capture (``StepPlan.baked``:
the random key, learning rate, momentum, dropout p, the optimizer's state
arrays) changed since, so a replay always equals the planned step. The host
keeps its own counters in step by arithmetic, so the tail batch, run eagerly
through the layers, draws where it would have; when something else drew from
the backend between two steps (another model's), the state's counter is set
to the backend's again (one small copy, only then).
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..backend import Array, Backend
from ..backend.graph_step import COUNTER, STATE_SIZE, GraphCaptureError, Replay, graph_state
from ..layers import Layer
from .step import StepPlan

MODES = ("on", "off", "auto")
# What --graph auto does on CuPy: False until scripts/gpu_check.sh has shown
# graph replay equal to the eager planned step on a GPU.
AUTO_ON_CUPY = False


def check_mode(graph: Any) -> str:
    """``graph`` if it is one of MODES; ValueError otherwise."""
    if graph not in MODES:
        raise ValueError(f"graph must be one of {', '.join(MODES)}, got {graph!r}")
    return graph


def uses_graph(graph: str, backend: Backend) -> bool:
    """Whether mode ``graph`` replays planned steps as a graph on ``backend``."""
    return check_mode(graph) == "on" or (graph == "auto" and AUTO_ON_CUPY
                                         and backend.name == "cupy")


def explain_auto_graph() -> str:
    """One line: what ``--graph auto`` does, and why."""
    if AUTO_ON_CUPY:
        return ("--graph auto (train's default): each full batch's step is replayed as a CUDA "
                "graph on cupy; numpy runs it without a graph")
    return ("--graph auto (train's default): each step runs without a CUDA graph, on cupy as "
            "on numpy (graph replay is not yet switched on for cupy: it has not passed its "
            "parity check on a GPU, scripts/gpu_check.sh; --graph on uses it now)")


class StepGraph:
    """``plan``'s step for graph replay: its batch buffers, the state (uint64:
    the step's first row in the epoch's order, its first dropout counter), and
    the captured step while the epoch's arrays stay the same."""

    def __init__(self, plan: StepPlan) -> None:
        b, xp, batch = plan.backend, plan.backend.xp, plan.batch
        self.plan, self.backend = plan, b
        self.x = xp.empty((batch, plan.stages[0].linear.input_dim), plan.dtype)
        self.y = xp.empty((batch, plan.stages[-1].linear.output_dim), plan.dtype)
        self.losses, self.hits = xp.empty(batch, "float64"), xp.empty(batch, bool)
        self.state = xp.zeros(STATE_SIZE, np.uint64)
        self.delta = xp.asarray(graph_state(offset=batch, counter=plan.counters))
        self.warm, self.replay, self.bound = False, None, ()
        self.baked: tuple[tuple, list[Array]] = ((), [])  # plan.baked() at the capture
        self.counter = 0  # the backend's next counter, as this graph's state holds it
        self.path = "planned"  # until a capture succeeds

    def start_epoch(self, x: Array, y: Array, order: Array | None, losses: Array,
                    hits: Array) -> None:
        """Bind the epoch's data ``x``, ``y`` (in the plan's dtype), its order
        (None: as they are) and the arrays of its samples' ``losses`` and
        ``hits``, and set the state to row 0 and the backend's next counter
        (one small copy to the device)."""
        b = self.backend
        order = b.xp.arange(len(x), dtype=np.int64) if order is None else order
        bound = (x, y, order, losses, hits)
        if not _identical(bound, self.bound):
            self.replay = None  # the captured step holds the old arrays
        self.bound = bound
        self.state[...] = b.xp.asarray(graph_state(offset=0, counter=b.drawn))
        self.counter = b.drawn

    def rows(self, rows: slice) -> tuple[Array, Array]:
        """The inputs and targets at positions ``rows`` of the epoch's order."""
        x, y, order = self.bound[:3]
        index = order[rows]
        return x[index], y[index]

    def step(self) -> None:
        """The next full batch: eagerly the first time, then captured once per
        epoch (and again when a baked value changed) and replayed."""
        b = self.backend
        if b.drawn != self.counter:  # drawn from elsewhere since: start at the backend's
            self.state[COUNTER:COUNTER + 1] = b.xp.asarray(np.array([b.drawn], np.uint64))
        baked = self.plan.baked()
        if self.replay is not None and not (baked[0] == self.baked[0]
                                            and _identical(baked[1], self.baked[1])):
            self.replay = None
        if self.replay is not None:
            self.replay()
        elif self.warm:
            self.baked = baked
            self.replay, self.path = capture(b, self.record)
        else:
            self.record()
            self.warm = True
        self.counter = b.take_counters(self.plan.counters) + self.plan.counters

    def record(self) -> None:
        """The step's backend operations, every per-step value read from the state."""
        b, state = self.backend, self.state
        x, y, order, losses, hits = self.bound
        b.gather_rows(x, y, order, state, self.x, self.y)
        self.plan.run(self.x, self.y, self.losses, self.hits, state=state)
        b.place_and_advance(self.losses, self.hits, self.delta, losses, hits, state)


def capture(backend: Backend, record: Replay) -> tuple[Replay, str]:
    """(replay, path): ``record`` captured with the first of the backend's
    GRAPH_GEMMS that captures, and run once; when none does, ``record`` itself
    (the planned step, run eagerly each time)."""
    for gemm in backend.GRAPH_GEMMS:
        try:
            return backend.capture(record, gemm), f"graph ({gemm})"
        except GraphCaptureError:
            continue
    record()
    return record, "planned"


def _identical(first: tuple | list, second: tuple | list) -> bool:
    """Whether two sequences hold the same objects, one by one."""
    return len(first) == len(second) and all(a is b for a, b in zip(first, second))


def step_graph(plan: StepPlan) -> StepGraph:
    """``plan``'s StepGraph, made on first use and kept with the plan's model
    (which the plan and graph hold only weakly) while its plan stays the same."""
    model = plan.model()
    graph = _GRAPHS.get(model)
    if graph is None or graph.plan is not plan:
        graph = _GRAPHS[model] = StepGraph(plan)
    return graph


_GRAPHS: weakref.WeakKeyDictionary[Layer, StepGraph] = weakref.WeakKeyDictionary()

"""The operations only a graph step calls (``gpunet/planning/graph.py``).

A graph step reads what varies from step to step from a small uint64 state
array on the device: at OFFSET the step's first row in the epoch's order, at
COUNTER its first dropout counter, at KEY the random key. Its first layer's
products read the batch's inputs from row state[OFFSET] (``StateRows``), the
output stage reads its targets and places its losses and hits there
(``dense_softmax_cross_entropy``'s ``state``), a dense stage's dropout draws
from COUNTER and KEY (``dense_forward``'s ``state``), and ``update_and_advance``
updates the parameters with rates held on the device, then moves the state on. ``capture``
is, on a device, a CUDA graph of the step; here its stand-in, the step's
operations recorded as it runs once and called again, with the same arguments,
at each replay.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

Array = Any
Replay = Callable[[], None]
# A graph state's entries (uint64): the step's first row in the epoch's order,
# its first dropout counter, the random key.
OFFSET, COUNTER, KEY = range(3)
STATE_SIZE = 3
# The backend operations a graph step calls: what the stand-in records.
STEP_OPERATIONS = ("gemm", "gemm_dense_forward", "gemm_dense_softmax_cross_entropy",
                   "gemm_dense_backward", "update_and_advance")
Call = tuple[Callable[..., Any], tuple, dict]  # a recorded operation and its arguments


def graph_state(offset: int, counter: int, key: int) -> np.ndarray:
    """A graph state (or a step's change to one) as a host uint64 array."""
    state = np.zeros(STATE_SIZE, np.uint64)
    state[OFFSET], state[COUNTER], state[KEY] = offset, counter, key
    return state


@dataclass(frozen=True)
class StateRows:
    """The ``batch`` rows of ``data`` (C-contiguous, one row per sample) from
    row state[OFFSET]: a graph step's batch. ``buffer``, (batch, row length) of
    data's dtype, is where a device backend copies them to (``state_rows``)."""
    data: Array
    state: Array
    batch: int
    buffer: Array


class GraphCaptureError(RuntimeError):
    """A step could not be captured as a graph; nothing of it ran."""


class GraphStepOperations:
    """Mixed into ``Backend``: written once against ``self.xp``."""

    xp: Any
    # The matrix products a capture may use, tried in order; each names its path.
    GRAPH_GEMMS: tuple[str, ...] = ("stand-in",)
    # Those graph mode "auto" tries (planning/graph.py): none, the planned step.
    AUTO_GRAPH_GEMMS: tuple[str, ...] = ()

    def state_rows(self, rows: StateRows) -> Array:
        """The rows ``rows`` names, read where they lie (a view of its data)."""
        start = int(rows.state[OFFSET])
        return rows.data[start:start + rows.batch]

    def update_and_advance(self, param: Array, grad: Array, velocity: Array | None,
                           rates: Array, scratch: Array, state: Array, delta: Array) -> None:
        """One optimizer step with its rates read from ``rates`` on the device:
        plain descent (``velocity`` None), param -= rates[0] grad; or momentum,
        velocity = rates[1] velocity + rates[2] grad, param -= rates[0] velocity
        (rates[2] = 1 - momentum), as ``sgd_update`` and ``momentum_update``
        compute them. Then the state of the next step: state += delta."""
        xp = self.xp
        if velocity is None:
            param -= xp.multiply(rates[0], grad, out=scratch)
        else:
            velocity *= rates[1]
            velocity += xp.multiply(rates[2], grad, out=scratch)
            param -= xp.multiply(rates[0], velocity, out=scratch)
        xp.add(state, delta, out=state)

    def read_ahead(self, x: Array, targets: Array) -> None:
        """Where ``x`` is a graph step's StateRows, a hint: the next step's rows
        of its data and of ``targets`` (the epoch's, row for row) brought into
        the device's cache beside the step (a device backend's, in a recorded
        step not bound). Here nothing: no number depends on it."""

    def run_step(self, record: Replay) -> None:
        """Run ``record()``, a step of backend operations, without capturing it,
        making the calls a capture of it makes."""
        record()

    def bind(self, record: Replay) -> Replay:
        """Run ``record()`` as ``run_step`` runs it and return what runs it so
        again: the planned step, each time. A device backend binds its launches
        once instead (CupyBackend.bind)."""
        self.run_step(record)
        return functools.partial(self.run_step, record)

    def capture(self, record: Replay, gemm: str) -> Replay:
        """Run ``record()``, a step of backend operations, once and return what
        replays it; ``gemm`` is one of ``GRAPH_GEMMS``. The stand-in of a CUDA
        graph: the operations are recorded as they run and replayed with the
        same arguments, so a value the step took from the host stays fixed."""
        calls = record_calls(self, record)

        def replay() -> None:
            for operation, args, kwargs in calls:
                operation(*args, **kwargs)
        return replay


def record_calls(backend: GraphStepOperations, record: Replay) -> list[Call]:
    """Run ``record()`` once and return the calls of ``backend``'s
    STEP_OPERATIONS it made, in order: on a device, each is one kernel (a
    product reading a ``StateRows`` two: the copy of its rows, then the product)."""
    calls: list[Call] = []
    with _recording(backend, calls):
        record()
    return calls


@contextlib.contextmanager
def _recording(backend: GraphStepOperations, calls: list[Call]) -> Iterator[None]:
    """While open, each of ``backend``'s STEP_OPERATIONS runs and appends
    (operation, args, kwargs) to ``calls``; but those one of them calls
    (a fused operation's parts: ``gemm_dense_forward``'s ``gemm``, ...), which it
    makes again."""
    inside = [False]  # within a recorded operation

    def recorded(operation: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if inside[0]:
                return operation(*args, **kwargs)
            calls.append((operation, args, kwargs))
            inside[0] = True
            try:
                return operation(*args, **kwargs)
            finally:
                inside[0] = False
        return call

    for name in STEP_OPERATIONS:
        setattr(backend, name, recorded(getattr(backend, name)))
    try:
        yield
    finally:
        for name in STEP_OPERATIONS:
            delattr(backend, name)

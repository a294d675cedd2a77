"""The operations only a graph step calls (``gpunet/planning/graph.py``).

A graph step reads what varies from step to step from a small uint64 state
array on the device: at OFFSET the step's first row in the epoch's order,
at COUNTER its first dropout counter. ``gather_rows`` reads the offset, a
dense stage's dropout the counter (``dense_forward``'s ``state``), and
``place_and_advance`` the offset before it moves both on. ``capture`` is,
on a device, a CUDA graph of the step; here its stand-in, the step's
operations recorded as it runs once and called again, with the same
arguments, at each replay.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import numpy as np

Array = Any
Replay = Callable[[], None]
# A graph state's entries (uint64): the step's first row in the epoch's order,
# and its first dropout counter.
OFFSET, COUNTER = range(2)
STATE_SIZE = 2
# The backend operations a graph step calls: what the stand-in records.
STEP_OPERATIONS = ("gather_rows", "gemm", "dense_forward", "dense_softmax_cross_entropy",
                   "dense_backward", "sgd_update", "momentum_update", "place_and_advance")
Call = tuple[Callable[..., Any], tuple, dict]  # a recorded operation and its arguments


def graph_state(offset: int, counter: int) -> np.ndarray:
    """A graph state (or a step's change to one) as a host uint64 array."""
    state = np.zeros(STATE_SIZE, np.uint64)
    state[OFFSET], state[COUNTER] = offset, counter
    return state


class GraphCaptureError(RuntimeError):
    """A step could not be captured as a graph; nothing of it ran."""


class GraphStepOperations:
    """Mixed into ``Backend``: written once against ``self.xp``."""

    xp: Any
    # The matrix products a capture may use, tried in order; each names its path.
    GRAPH_GEMMS: tuple[str, ...] = ("stand-in",)

    def gather_rows(self, inputs: Array, targets: Array, order: Array, state: Array,
                    batch_inputs: Array, batch_targets: Array) -> None:
        """The rows order[offset:offset + B] of ``inputs`` and of ``targets``,
        offset = state[OFFSET], into ``batch_inputs`` and ``batch_targets`` (B rows each)."""
        offset = int(state[OFFSET])
        rows = order[offset:offset + len(batch_inputs)]
        self.xp.take(inputs, rows, axis=0, out=batch_inputs)
        self.xp.take(targets, rows, axis=0, out=batch_targets)

    def place_and_advance(self, losses: Array, hits: Array, delta: Array, all_losses: Array,
                          all_hits: Array, state: Array) -> None:
        """A step's ``losses`` and ``hits`` into the epoch's from offset
        state[OFFSET], then the state of the next step: state += delta (rows,
        counters per step)."""
        rows = slice(int(state[OFFSET]), int(state[OFFSET]) + len(losses))
        all_losses[rows], all_hits[rows] = losses, hits
        self.xp.add(state, delta, out=state)

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
    STEP_OPERATIONS it made, in order: on a device, each is one graph node."""
    calls: list[Call] = []
    with _recording(backend, calls):
        record()
    return calls


@contextlib.contextmanager
def _recording(backend: GraphStepOperations, calls: list[Call]) -> Iterator[None]:
    """While open, each of ``backend``'s STEP_OPERATIONS runs and appends
    (operation, args, kwargs) to ``calls``."""
    def recorded(operation: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((operation, args, kwargs))
            return operation(*args, **kwargs)
        return call

    for name in STEP_OPERATIONS:
        setattr(backend, name, recorded(getattr(backend, name)))
    try:
        yield
    finally:
        for name in STEP_OPERATIONS:
            delattr(backend, name)

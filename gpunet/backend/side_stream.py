"""Side streams for the work a captured step can do beside its chain of kernels.

A step's kernels form a chain, each reading what the one before wrote, but for
the weight gradients of the upper stages (``gemm``'s ``aside``) and the bias
gradients' column sums (``gemm_dense_backward``'s, the output stage's), which
nothing reads before the update, and the next step's rows asked of the cache
(``read_ahead``), which nothing reads. Captured on a stream of their own, forked
from the capture's stream by an event and joined back by another before the
update, each becomes a branch of the CUDA graph that runs beside the chain and
beside the others (CUDA's cross-stream capture: ``cudaEventRecord`` on the
capturing stream, then ``cudaStreamWaitEvent`` on the other, draws it into the
capture). Each kind of work has a few such streams (``SidePool``), so that the
deep step's two products and three column sums each take one, and all end
before the chain's last product (docs/gpu-cost-model.md, "The captured step's
schedule"). The numbers are the same: no kernel of a branch touches what the
chain or another branch writes, but in an order the graph's edges fix (checked
on the host: tests/backend/test_cupy_graph_step_on_host.py, over
tests/helpers/races.py).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

Stream = Any  # cupy.cuda.Stream
Event = Any  # cupy.cuda.Event


class SideStream:
    """``stream``, forked from and joined to a capture's stream through the
    events ``forked`` and ``joined``, made before any capture (nothing is
    created while capturing)."""

    def __init__(self, stream: Stream, forked: Event, joined: Event) -> None:
        self.stream, self.forked, self.joined = stream, forked, joined
        self.open = False  # work forked since the last join

    @contextlib.contextmanager
    def fork(self, main: Stream) -> Iterator[None]:
        """Inside, the current stream is this one, after what ``main`` holds so far."""
        self.forked.record(main)
        self.stream.wait_event(self.forked)
        self.open = True
        with self.stream:
            yield

    def join(self, main: Stream) -> None:
        """``main``'s later work waits for what was forked here (if anything was)."""
        if self.open:
            self.joined.record(self.stream)
            main.wait_event(self.joined)
            self.open = False


class SidePool:
    """The side streams of one kind of work: each fork goes to the first of
    ``sides`` given nothing since its last join (all of them given something:
    the first again, after what it holds)."""

    def __init__(self, sides: Sequence[SideStream]) -> None:
        self.sides = tuple(sides)

    def fork(self, main: Stream) -> contextlib.AbstractContextManager:
        """The first free side's ``fork``."""
        return next((side for side in self.sides if not side.open), self.sides[0]).fork(main)

    def join(self, main: Stream) -> None:
        """``main``'s later work waits for what any side was given."""
        for side in self.sides:
            side.join(main)

    def forget(self) -> None:
        """Drop what a capture that failed may have forked and not joined."""
        for side in self.sides:
            side.open = False


class Branches(NamedTuple):
    """A capture's side streams, a pool a kind of work aside: the weight
    gradients' products, the bias gradients' column sums, and reading ahead."""

    products: SidePool
    sums: SidePool
    ahead: SidePool

    def join(self, main: Stream) -> None:
        """``main``'s later work waits for what any branch was given."""
        for pool in self:
            pool.join(main)

    def forget(self) -> None:
        """Drop what a capture that failed may have forked and not joined."""
        for pool in self:
            pool.forget()

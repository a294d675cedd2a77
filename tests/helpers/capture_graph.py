"""A captured step's graph, built from the log of its launches, forks and joins
(``helpers/cupy_on_host.py`` keeps one in EVENTS), and when each of its kernels
would run on a device that gives them the times it is told.

The graph is CUDA's for a capture on several streams (``side_stream.py``): each
stream's launches in order, a fork drawing a side stream's next launch in after
what the capture's own stream held so far, a join drawing the capture's stream's
next launch in after what the side stream held.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

MAIN = "main"  # the capture's own stream
Span = tuple[int, int]  # the addresses of an array's first byte and one past its last


class Launch(NamedTuple):
    stream: str
    name: str
    reads: list[Span]
    writes: list[Span]


def capture_graph(events: list[tuple]) -> tuple[list[Launch], list[set[int]]]:
    """(the launches of ``events``, each launch's direct predecessors): events
    are ("launch", stream, name, reads, writes), ("fork", stream), ("join", stream)."""
    launches: list[Launch] = []
    after: list[set[int]] = []
    last: dict[str, int] = {}  # each stream's last launch so far
    waits: dict[str, set[int]] = {}  # what a stream's next launch waits for, from forks and joins
    for event in events:
        kind, stream = event[0], event[1]
        if kind == "fork":
            waits.setdefault(stream, set()).update(_last(last, MAIN))
        elif kind == "join":
            waits.setdefault(MAIN, set()).update(_last(last, stream))
        else:
            after.append(_last(last, stream) | waits.pop(stream, set()))
            last[stream] = len(launches)
            launches.append(Launch(*event[1:]))
    return launches, after


def schedule(launches: list[Launch], after: list[set[int]], time: Callable[[Launch], float],
             gap: float) -> list[tuple[float, float]]:
    """Each launch's (start, end) on a device that runs it ``time(launch)`` µs,
    as soon as its predecessors have ended and ``gap`` µs more (the first at 0),
    with as many running at once as are ready."""
    times: list[tuple[float, float]] = []
    for launch, before in zip(launches, after):
        start = max((times[i][1] + gap for i in before), default=0.0)
        times.append((start, start + time(launch)))
    return times


def _last(last: dict[str, int], stream: str) -> set[int]:
    return {last[stream]} if stream in last else set()

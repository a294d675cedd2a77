"""Whether a captured step's kernels on several streams could race on a GPU.

A capture's work is a graph: each stream's launches in order, a fork drawing a side
stream in after what the capture's stream held so far, a join drawing the capture's
later work in after what the side stream held (``side_stream.py``). Two launches
that touch the same memory, one writing it, must then be ordered by the graph's
edges, or a GPU may run them in either order, or at once. ``unordered`` checks a
log of ``("launch", stream, name, reads, writes)``, ``("fork", stream)`` and
``("join", stream)`` events (``helpers/cupy_on_host.py`` keeps one in EVENTS),
each launch's reads and writes the spans of bytes of the arrays it was given
(``accesses``: spans, not arrays, so a log keeps no array alive).
"""
from __future__ import annotations

import numpy as np

MAIN = "main"  # the capture's own stream
Span = tuple[int, int]  # the addresses of an array's first byte and one past its last


def span(array: np.ndarray) -> Span:
    """The addresses of an array's first and one past its last byte."""
    start = array.__array_interface__["data"][0]
    low = sum((n - 1) * s for n, s in zip(array.shape, array.strides) if s < 0 and n)
    high = sum((n - 1) * s for n, s in zip(array.shape, array.strides) if s > 0 and n)
    return (start + low, start + high + array.itemsize) if array.size else (start, start)


def overlap(first: list[Span], second: list[Span]) -> bool:
    """Whether a span of ``first`` and one of ``second`` share a byte."""
    return any(a0 < b1 and b0 < a1 for a0, a1 in first for b0, b1 in second)


def unordered(events: list[tuple]) -> list[str]:
    """Each pair of launches in ``events`` that touch the same bytes, one writing
    them, with no path between them in the capture's graph: "first / second"."""
    launches: list[tuple[str, str, list[Span], list[Span]]] = []
    after: list[set[int]] = []  # each launch's direct predecessors
    last: dict[str, int] = {}  # each stream's last launch so far
    waits: dict[str, set[int]] = {}  # what a stream's next launch waits for, from forks and joins
    for event in events:
        kind, stream = event[0], event[1]
        if kind == "fork":
            waits.setdefault(stream, set()).update(_last(last, MAIN))
        elif kind == "join":
            waits.setdefault(MAIN, set()).update(_last(last, stream))
        else:
            _, _, name, reads, writes = event
            after.append(_last(last, stream) | waits.pop(stream, set()))
            last[stream] = len(launches)
            launches.append((stream, name, reads, writes))
    before = _closure(after)
    found = []
    for j, (_, name_j, reads_j, writes_j) in enumerate(launches):
        for i, (_, name_i, reads_i, writes_i) in enumerate(launches[:j]):
            if i not in before[j] and (overlap(writes_i, reads_j + writes_j)
                                       or overlap(reads_i, writes_j)):
                found.append(f"{name_i} / {name_j}")
    return found


def _last(last: dict[str, int], stream: str) -> set[int]:
    return {last[stream]} if stream in last else set()


def _closure(after: list[set[int]]) -> list[set[int]]:
    """Each launch's predecessors, direct or not (launches come after theirs)."""
    before: list[set[int]] = []
    for direct in after:
        before.append(set(direct).union(*(before[i] for i in direct)))
    return before


def accesses(params: str, args: tuple) -> tuple[list[Span], list[Span]]:
    """(the spans read, the spans written) of a kernel of C++ parameters
    ``params`` given ``args``: a const pointer's array is read, any other's written."""
    reads: list[Span] = []
    writes: list[Span] = []
    for param, arg in zip(params.split(","), args):
        if isinstance(arg, np.ndarray):
            (reads if param.split()[0] == "const" else writes).append(span(arg))
    return reads, writes

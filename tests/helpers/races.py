"""Whether a captured step's kernels on several streams could race on a GPU.

A capture's work is a graph (``helpers/capture_graph.py``). Two launches
that touch the same memory, one writing it, must then be ordered by the graph's
edges, or a GPU may run them in either order, or at once. ``unordered`` checks a
log of ``("launch", stream, name, reads, writes)``, ``("fork", stream)`` and
``("join", stream)`` events (``helpers/cupy_on_host.py`` keeps one in EVENTS),
each launch's reads and writes the spans of bytes of the arrays it was given
(``accesses``: spans, not arrays, so a log keeps no array alive).
"""
from __future__ import annotations

import numpy as np

from helpers.capture_graph import Span, capture_graph


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
    launches, after = capture_graph(events)
    before = _closure(after)
    found = []
    for j, (_, name_j, reads_j, writes_j) in enumerate(launches):
        for i, (_, name_i, reads_i, writes_i) in enumerate(launches[:j]):
            if i not in before[j] and (overlap(writes_i, reads_j + writes_j)
                                       or overlap(reads_i, writes_j)):
                found.append(f"{name_i} / {name_j}")
    return found


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

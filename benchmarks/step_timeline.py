"""A replayed graph step's timeline on the device, read from a profiler's trace:
when each of the step's kernels starts and ends after the step's first one
starts (medians over the replays), the step's span and the period between
replays. It shows which kernels a step waits on, and what its branches overlap.

    python -m benchmarks.step_timeline TRACE.json[.gz] ...

A trace is torch.profiler's Chrome trace (``export_chrome_trace``, as
``gpu_kernel_profile`` writes it): a kernel is an event of category "kernel",
its "tid" its stream, its args' "correlation" the API call that launched it
(kineto's libkineto/src/output_json.cpp). Every kernel of a replayed CUDA graph
carries its ``cudaGraphLaunch``'s correlation (CUPTI's kernel records), so a
replay is a group of kernels; a launch of its own (the bound planned step) is
a group of one, not a step.
"""
from __future__ import annotations

import gzip
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, NamedTuple


class Kernel(NamedTuple):
    name: str
    stream: Any  # as the trace names it
    start: float  # µs
    duration: float  # µs
    launch: int  # the correlation of the API call that launched it


class Row(NamedTuple):
    """A kernel of the step: medians over the replays, in µs after the step's start."""
    name: str
    stream: Any
    start: float
    duration: float
    end: float


class Timeline(NamedTuple):
    steps: int  # the replays of the most common shape, summarised
    others: int  # replays of another shape, left out
    span: float  # median µs from a replay's first start to its last end
    period: float  # median µs from a replay's first start to the next one's
    rows: tuple[Row, ...]  # by start


def read_trace(path: str | Path) -> dict:
    """A Chrome trace from ``path`` (.json, or .json.gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def kernels(trace: dict) -> list[Kernel]:
    """The trace's kernels, by start."""
    found = [Kernel(event["name"], event.get("tid"), float(event["ts"]), float(event["dur"]),
                    int(event.get("args", {}).get("correlation", -1)))
             for event in trace.get("traceEvents", []) if event.get("cat") == "kernel"]
    return sorted(found, key=lambda kernel: kernel.start)


def timeline(found: list[Kernel]) -> Timeline | None:
    """The replays among ``found`` (groups of two or more kernels of one
    launch) summarised; None where there are none. A replay's shape is its
    kernels' (stream, name, how many before of the same); only replays of the
    most common shape are summarised, the rest counted."""
    groups: dict[int, list[Kernel]] = defaultdict(list)
    for kernel in found:
        groups[kernel.launch].append(kernel)
    replays = [group for launch, group in groups.items() if launch >= 0 and len(group) > 1]
    if not replays:
        return None
    shaped = [(_shape(group), group) for group in replays]
    common, steps = Counter(shape for shape, _ in shaped).most_common(1)[0]
    kept = sorted((group for shape, group in shaped if shape == common),
                  key=lambda group: group[0].start)
    columns = defaultdict(list)
    for group in kept:
        first = group[0].start
        for key, kernel in zip(_shape(group), group):
            columns[key].append((kernel.start - first, kernel.duration))
    rows = [Row(name, stream, statistics.median(s for s, _ in times),
                statistics.median(d for _, d in times), statistics.median(s + d for s, d in times))
            for (stream, name, _), times in columns.items()]
    span = statistics.median(max(k.start + k.duration for k in group) - group[0].start
                             for group in kept)
    starts = [group[0].start for group in kept]
    period = statistics.median(b - a for a, b in zip(starts, starts[1:])) if steps > 1 else span
    return Timeline(steps, len(replays) - steps, span, period,
                    tuple(sorted(rows, key=lambda row: (row.start, row.end))))


def _shape(group: list[Kernel]) -> tuple:
    """Each kernel of a replay, in order of start, as (stream, name, how many
    of the same stream and name came before it)."""
    seen: Counter = Counter()
    shape = []
    for kernel in group:
        shape.append((kernel.stream, kernel.name, seen[kernel.stream, kernel.name]))
        seen[kernel.stream, kernel.name] += 1
    return tuple(shape)


def report(found: Timeline | None, width: int = 60) -> str:
    """The timeline as a table, µs after the step's start; or why there is none."""
    if found is None:
        return "no replayed graph in the trace: no launch made two or more kernels"
    lines = [f"{found.steps} replays (and {found.others} of another shape): a step spans "
             f"{found.span:.1f} µs, one starts every {found.period:.1f} µs (medians)",
             f"{'kernel':<{width}} {'stream':>8} {'start':>7} {'time':>7} {'end':>7}"]
    lines += [f"{row.name[:width]:<{width}} {str(row.stream)[-8:]:>8} {row.start:>7.1f} "
              f"{row.duration:>7.1f} {row.end:>7.1f}" for row in found.rows]
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"### {path}\n{report(timeline(kernels(read_trace(path))))}")

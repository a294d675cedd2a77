"""benchmarks/step_timeline.py: a replayed graph step's timeline from a
profiler's Chrome trace."""
from __future__ import annotations

import gzip
import json

import pytest

from benchmarks.step_timeline import Row, kernels, read_trace, report, timeline


def kernel(name: str, stream: int, start: float, duration: float, launch: int) -> dict:
    """A kernel event as kineto writes one."""
    return {"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": stream, "ts": start,
            "dur": duration, "args": {"correlation": launch, "stream": stream}}


def replay(start: float, launch: int, late: float = 0.0) -> list[dict]:
    """A graph's replay: a product, a branch beside the next kernel, then an update."""
    return [kernel("product", 7, start, 4.0, launch),
            kernel("sums", 9, start + 4.1, 1.5 + late, launch),
            kernel("chain", 7, start + 4.1, 3.0, launch),
            kernel("update", 7, start + 7.2 + late, 2.0, launch)]


def test_each_replay_is_the_kernels_of_one_launch_summarised_by_medians():
    events = [*replay(100.0, 1), *replay(120.0, 2, late=1.0), *replay(150.0, 3),
              kernel("copy", 7, 170.0, 1.0, 4),  # a launch of its own: not a step
              {"ph": "X", "cat": "cuda_runtime", "name": "cudaGraphLaunch", "ts": 99.0,
               "dur": 2.0, "args": {"correlation": 1}}]
    found = timeline(kernels({"traceEvents": events}))
    assert (found.steps, found.others) == (3, 0)
    assert found.span == pytest.approx(9.2)  # the median replay's, not the late one's 10.2
    assert found.period == pytest.approx(25.0)  # starts 100, 120, 150
    expected = [Row("product", 7, 0.0, 4.0, 4.0), Row("sums", 9, 4.1, 1.5, 5.6),  # by start,
                Row("chain", 7, 4.1, 3.0, 7.1), Row("update", 7, 7.2, 2.0, 9.2)]  # then end
    assert [row[:2] for row in found.rows] == [row[:2] for row in expected]
    assert [row[2:] for row in found.rows] == [pytest.approx(row[2:]) for row in expected]


def test_replays_of_another_shape_are_counted_not_summarised():
    other = [kernel("product", 7, 200.0, 4.0, 8), kernel("update", 7, 204.1, 2.0, 8)]
    found = timeline(kernels({"traceEvents": [*replay(100.0, 1), *replay(120.0, 2, late=1.0),
                                              *other]}))
    assert (found.steps, found.others) == (2, 1)
    assert [row.name for row in found.rows] == ["product", "sums", "chain", "update"]
    assert found.span == pytest.approx(9.7)  # of 9.2 and 10.2: not the other's 6.1
    assert found.rows[-1].start == pytest.approx(7.7)  # of 7.2 and 8.2: not the other's 4.1


def test_a_trace_without_replays_has_no_timeline_and_says_why():
    found = timeline(kernels({"traceEvents": [kernel("copy", 7, 1.0, 1.0, 1),
                                              kernel("copy", 7, 3.0, 1.0, 2)]}))
    assert found is None
    assert report(found) == "no replayed graph in the trace: no launch made two or more kernels"


def test_a_report_gives_the_medians_and_a_line_a_kernel(tmp_path):
    path = tmp_path / "trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": [*replay(100.0, 1), *replay(120.0, 2)]}, f)
    lines = report(timeline(kernels(read_trace(path)))).splitlines()
    assert lines[0] == ("2 replays (and 0 of another shape): a step spans 9.2 µs, one starts "
                        "every 20.0 µs (medians)")
    assert lines[1].split() == ["kernel", "stream", "start", "time", "end"]
    assert [line.split() for line in lines[2:]] == [
        ["product", "7", "0.0", "4.0", "4.0"], ["sums", "9", "4.1", "1.5", "5.6"],
        ["chain", "7", "4.1", "3.0", "7.1"], ["update", "7", "7.2", "2.0", "9.2"]]

"""Timing done right: warm-up, repeats, median and spread, on the right clock.

On the CPU a step is timed with ``perf_counter``. On a GPU the host returns
before the device is done, so the clock is a pair of CUDA events recorded on
the stream around the work, read after synchronising.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Timing:
    median_s: float
    q1_s: float
    q3_s: float
    min_s: float
    repeats: int

    def record(self) -> dict[str, float | int]:
        return {"median_s": self.median_s, "q1_s": self.q1_s, "q3_s": self.q3_s,
                "min_s": self.min_s, "repeats": self.repeats}


class HostClock:
    """Wall time on the host, after waiting for queued device work (``synchronize``)."""

    def __init__(self, synchronize: Callable[[], None] = lambda: None) -> None:
        self.synchronize = synchronize

    def time(self, fn: Callable[[], Any]) -> float:
        self.synchronize()
        start = time.perf_counter()
        fn()
        self.synchronize()
        return time.perf_counter() - start


class CudaEventClock:
    """Device time between two CUDA events on the current CuPy stream."""

    def time(self, fn: Callable[[], Any]) -> float:
        import cupy
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) / 1000


def measure(fn: Callable[[], Any], clock: HostClock | CudaEventClock, *, repeats: int,
            warmup: int = 1, budget_s: float = float("inf")) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then time up to ``repeats`` runs,
    stopping early (after at least one) once ``budget_s`` seconds are spent."""
    for _ in range(warmup):
        clock.time(fn)
    times: list[float] = []
    spent_since = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - spent_since < budget_s):
        times.append(clock.time(fn))
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return Timing(statistics.median(times), quartiles[0], quartiles[2], min(times), len(times))

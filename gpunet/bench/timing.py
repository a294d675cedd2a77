"""Timing done right: warm-up, at least three repeats, every reading kept, on the right clock.

On the CPU a call is timed with ``perf_counter``. On a GPU the host returns
before the device is done, so the clock is a pair of CUDA events recorded on
the stream around the work, read after synchronising; an event pair resolves
about half a microsecond, as long as a small kernel takes, so one reading
times enough calls back to back to span a millisecond, and reports the time
per call.

A record says whether its readings are *noisy* (``flags.NOISY_SPREAD``).
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from .flags import NOISY_SPREAD

MIN_REPEATS = 3
MAX_CALLS = 10_000  # calls in one reading, for work of under 0.1 µs


@dataclass
class Timing:
    """Seconds per call of each reading, in the order taken, each of ``calls`` calls."""

    times_s: list[float]
    calls: int

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def spread(self) -> float:
        """(max - min) / median of the readings: 0 when they all agree."""
        return (max(self.times_s) - min(self.times_s)) / self.median_s

    def record(self) -> dict[str, Any]:
        return {"median_s": self.median_s, "min_s": min(self.times_s),
                "max_s": max(self.times_s), "times_s": list(self.times_s),
                "repeats": len(self.times_s), "calls": self.calls, "spread": self.spread,
                "noisy": self.spread > NOISY_SPREAD}


class HostClock:
    """Wall time on the host, after waiting for queued device work (``synchronize``)."""

    def __init__(self, synchronize: Callable[[], None] = lambda: None) -> None:
        self.synchronize = synchronize

    def time(self, fn: Callable[[], Any], calls: int = 1) -> float:
        """Seconds per call of ``calls`` calls of ``fn``."""
        self.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        self.synchronize()
        return (time.perf_counter() - start) / calls

    def calls_for(self, fn: Callable[[], Any]) -> int:
        """Calls per reading: one (perf_counter resolves well under a microsecond)."""
        return 1


class CudaEventClock:
    """Device time between two CUDA events on the current CuPy stream."""

    span_s = 1e-3  # what one reading spans at least

    def time(self, fn: Callable[[], Any], calls: int = 1) -> float:
        """Seconds per call of ``calls`` calls of ``fn`` between one pair of events."""
        import cupy
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) / 1000 / calls

    def calls_for(self, fn: Callable[[], Any]) -> int:
        """Calls per reading, enough to span ``span_s``, sized by one timed call."""
        one = self.time(fn)
        return max(1, math.ceil(self.span_s / max(one, self.span_s / MAX_CALLS)))


def measure(fn: Callable[[], Any], clock: HostClock | CudaEventClock, *, repeats: int,
            warmup: int = 1, budget_s: float = float("inf")) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then time up to ``repeats`` readings
    of ``clock.calls_for(fn)`` calls each, stopping early once ``budget_s``
    seconds are spent, but not before ``MIN_REPEATS`` readings (or ``repeats``,
    if fewer)."""
    for _ in range(warmup):
        clock.time(fn)
    calls = clock.calls_for(fn)
    at_least = min(MIN_REPEATS, repeats)
    times: list[float] = []
    spent_since = time.perf_counter()
    while len(times) < repeats and (len(times) < at_least
                                    or time.perf_counter() - spent_since < budget_s):
        times.append(clock.time(fn, calls))
    return Timing(times, calls)

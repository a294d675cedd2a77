"""The threads a command computes with, and the words that say so.

A BLAS thread per core is the fastest on an idle machine for the wide model (1.5x
one thread at batch 128 on 2 cores), but when another process keeps a core busy,
every matrix product waits for the thread that shares that core: 2.5x to 3.5x
slower than one thread for every preset (docs/threads.md, ``python -m
benchmarks.threads``). So by default (``auto``) a command takes the cores that
other processes leave free: it looks before it starts, and a training run looks
again after each epoch. A rank of several takes its machine's cores // the ranks
there, as a cluster's launcher hands each machine's cores to its ranks.

This module chooses the count; the backend applies it (``Backend.use_threads``). On
the CPU the count is of threads sharing each product's row blocks, whose numbers do
not depend on it (``gpunet/backend/host_threads.py``), so following the load never
changes a result.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Protocol


AUTO = "auto"
BUSY_SHARE = 0.25   # a core other processes keep busy more than this share of the time is taken
FIRST_LOOK_S = 0.1  # how long auto watches the cores before a command starts
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # /proc/stat: user, nice, system, irq, softirq, steal


class Ranks(Protocol):
    size: int          # ranks in the run
    local_size: int    # ranks on this machine


@dataclass(frozen=True)
class CpuReading:
    wall_s: float      # time.monotonic()
    busy_s: float      # CPU time of every process on this process's cores
    own_s: float       # CPU time of this process, all its threads


def cpu_reading() -> CpuReading | None:
    """This moment's CPU times, from /proc/stat (the cores this process may use) and
    os.times(); None where /proc/stat cannot be read (not Linux)."""
    cores = {f"cpu{core}" for core in os.sched_getaffinity(0)}
    try:
        with open("/proc/stat") as stat:
            rows = [line.split() for line in stat if line.split(" ", 1)[0] in cores]
    except OSError:
        return None
    ticks = sum(int(row[1 + field]) for row in rows for field in BUSY_FIELDS)
    times = os.times()
    return CpuReading(time.monotonic(), ticks / os.sysconf("SC_CLK_TCK"),
                      times.user + times.system)


def busy_elsewhere(before: CpuReading, after: CpuReading) -> float:
    """The cores other processes (and, as steal, other virtual machines) kept busy
    between two readings."""
    wall = after.wall_s - before.wall_s
    if wall <= 0:
        return 0.0
    return max(0.0, (after.busy_s - before.busy_s - (after.own_s - before.own_s)) / wall)


def free_cores(elsewhere: float, cores: int) -> int:
    """Of ``cores``, those not taken by ``elsewhere`` cores of other work (each core
    busy more than BUSY_SHARE of the time counts as taken); at least 1."""
    return max(1, cores - math.ceil(max(0.0, elsewhere - BUSY_SHARE)))


class Threads:
    """A command's thread count: ``fixed``, or (None) as many as
    the cores other processes leave free, looked at for FIRST_LOOK_S now and again
    at each ``update``. ``read`` (default ``cpu_reading``) and ``pause`` are for tests."""

    def __init__(self, fixed: int | None,
                 read: Callable[[], CpuReading | None] | None = None,
                 pause: Callable[[float], None] = time.sleep) -> None:
        self.auto, self._read = fixed is None, read or cpu_reading
        self._cores = len(os.sched_getaffinity(0))
        self._last: CpuReading | None = None
        if self.auto:
            self._last = self._read()
            pause(FIRST_LOOK_S)
            fixed = self._free()
        self.count: int = fixed

    def update(self) -> bool:
        """(auto) Follow the cores left free since the last look; whether the count changed."""
        if not self.auto:
            return False
        count = self._free()
        changed, self.count = count != self.count, count
        return changed

    def _free(self) -> int:
        """The cores free since the last reading, or 1 where the cores cannot be read."""
        before, self._last = self._last, self._read()
        if before is None or self._last is None:
            return 1
        return free_cores(busy_elsewhere(before, self._last), self._cores)

    def __str__(self) -> str:
        chosen = f" (auto: {self.count} of {self._cores} cores free)" if self.auto else ""
        return f"{self.count}{chosen}"


def chosen_threads(requested: int | str | None, ranks: Ranks | None = None) -> Threads:
    """The threads of ``--threads``: a number as given; ``auto`` or None: for a rank of
    several its machine's cores // its ranks there, else the free cores (``Threads``)."""
    if isinstance(requested, int):
        return Threads(requested)
    if ranks is not None and ranks.size > 1:
        return Threads(max(1, len(os.sched_getaffinity(0)) // ranks.local_size))
    return Threads(None)


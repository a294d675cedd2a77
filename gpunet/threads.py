"""The BLAS and OpenMP threads a process computes with, and the words that say so.

One BLAS thread per process is the default: at the presets' default batch size
it is as fast as every core on an idle 2-core machine, and where another
process is busy it stays so, while a BLAS thread per core waits on the busy
core and runs 2.5x to 3.5x slower (docs/threads.md, ``python -m benchmarks.threads``).
A rank of a launch takes its machine's cores // the ranks there, as a cluster's
launcher hands each machine's cores to its ranks.
"""
from __future__ import annotations

import os
from typing import Protocol

from threadpoolctl import threadpool_info, threadpool_limits

DEFAULT_THREADS = 1


class Ranks(Protocol):
    size: int          # ranks in the run
    local_size: int    # ranks on this machine


def threads_for(requested: int | None, ranks: Ranks) -> int:
    """``requested`` if given; else 1 for a process alone, and for a rank of
    several its machine's cores // its ranks there (at least 1)."""
    if requested is not None:
        return requested
    if ranks.size == 1:
        return DEFAULT_THREADS
    return max(1, len(os.sched_getaffinity(0)) // ranks.local_size)


def limit_threads(threads: int) -> None:
    """Every BLAS and OpenMP library loaded in this process uses ``threads`` threads."""
    threadpool_limits(threads)


def threads_in_use() -> str:
    """The threads each kind of pool really uses, e.g. "BLAS 1 (openblas), OpenMP none"."""
    pools: dict[str, dict[str, int]] = {"BLAS": {}, "OpenMP": {}}
    for pool in threadpool_info():
        kind = "BLAS" if pool["user_api"] == "blas" else "OpenMP"
        pools[kind][pool["internal_api"]] = pool["num_threads"]
    return ", ".join(
        f"{kind} " + (" ".join(f"{n} ({library})" for library, n in sorted(found.items()))
                      if found else "none")
        for kind, found in pools.items())

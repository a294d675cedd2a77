"""Waiting for a non-blocking collective: polled against a deadline, with a back-off.

MPI has no timeout of its own, and a blocking collective whose peer is stopped or
cut off waits for ever, spinning a core. ``wait`` polls the request instead: at
once (a healthy collective of two ranks on one machine takes about 50 us), then
without sleeping for ``SPIN_S``, then between naps of an eighth of the time
waited so far, at most ``MAX_NAP_S``: a wait costs at most about an eighth more
than the collective itself, and a rank stalled for seconds uses a few
milliseconds of CPU a second. (MPICH progresses a non-blocking collective only
inside MPI calls, so a rank's nap delays its peers by as much.)
"""
from __future__ import annotations

import time
from typing import Callable

DEFAULT_TIMEOUT_S = 600.0  # a collective's time limit unless told: see docs/reliability.md
SPIN_S = 0.001             # polled without sleeping for this long
NAP_SHARE = 8              # then naps of 1/NAP_SHARE of the time waited so far...
MAX_NAP_S = 0.005          # ...at most this long


class CollectiveTimeout(RuntimeError):
    """A collective did not finish within its communicator's timeout; the
    communicator cannot be used again: end every rank (MPI_Abort)."""


def wait(done: Callable[[], bool], deadline: float | None,
         idle: Callable[[], None] | None = None, *,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> bool:
    """Call ``done`` until it returns True (True), or until ``clock()`` reaches
    ``deadline`` (False; None: never): at once, then without sleeping for
    ``SPIN_S``, then between naps growing with the time waited (at most
    ``MAX_NAP_S``), calling ``idle`` before each nap."""
    if done():
        return True
    start = clock()
    while not done():
        now = clock()
        if deadline is not None and now >= deadline:
            return False
        waited = now - start
        if waited >= SPIN_S:
            if idle is not None:
                idle()
            sleep(min(waited / NAP_SHARE, MAX_NAP_S))
    return True

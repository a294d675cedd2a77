"""Waiting for a non-blocking collective: polled against a deadline, with a back-off.

MPI has no timeout of its own, and a blocking collective whose peer is stopped or
cut off waits for ever, spinning a core. ``wait`` polls the request instead: at
once and back to back for ``BUSY_S`` (a healthy collective of two ranks on one
machine takes about 50 us), then until ``SPIN_S`` giving the core up between
tests (``sched_yield``: straight back when no other process wants the core, else
a computing peer gets it; on 2 busy cores, training ran 1.7x faster than with a
plain spin), then between naps of an eighth of the time waited so far, at most
``MAX_NAP_S``: a late peer costs at most about an eighth more wait, and a rank
stalled for seconds uses a few milliseconds of CPU a second. (MPICH progresses a
non-blocking collective only inside MPI calls, and moves a large message in
chunks: a rank's nap delays its peers by as much, hence no naps before
``SPIN_S``; with naps after 1 ms, training ran 4x slower.)
"""
from __future__ import annotations

import os
import time
from typing import Callable

DEFAULT_TIMEOUT_S = 600.0  # a collective's time limit unless told: see docs/reliability.md
BUSY_S = 0.0002            # polled back to back for this long (a healthy collective's time)
SPIN_S = 0.01              # then giving the core up between tests, until this long
NAP_SHARE = 8              # then naps of 1/NAP_SHARE of the time waited so far...
MAX_NAP_S = 0.005          # ...at most this long


class CollectiveTimeout(RuntimeError):
    """A collective did not finish within its communicator's timeout; the
    communicator cannot be used again: end every rank (MPI_Abort)."""


def wait(done: Callable[[], bool], deadline: float | None,
         idle: Callable[[], None] | None = None, *,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep,
         pause: Callable[[], None] = os.sched_yield) -> bool:
    """Call ``done`` until it returns True (True), or until ``clock()`` reaches
    ``deadline`` (False; None: never): at once, then back to back for
    ``BUSY_S``, then with a ``pause`` between calls until ``SPIN_S``, then with
    naps growing with the time waited (at most ``MAX_NAP_S``), calling ``idle``
    before each nap."""
    if done():
        return True
    start = clock()
    while not done():
        now = clock()
        if deadline is not None and now >= deadline:
            return False
        waited = now - start
        if waited < BUSY_S:
            continue
        if waited < SPIN_S:
            pause()
        else:
            if idle is not None:
                idle()
            sleep(min(waited / NAP_SHARE, MAX_NAP_S))
    return True

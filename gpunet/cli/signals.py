"""SIGTERM and SIGHUP end a command as Ctrl-C (SIGINT) does: Python raises an
exception where the command is, so every cleanup on the way runs (the atomic
writer removes its temporary, a failed run names its last good checkpoint), then
one line and the status 128 + the signal's number (status.py)."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

from .status import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED

# What each signal a command handles is said as, and the status it ends with.
ENDINGS = {signal.SIGINT: ("interrupted", EXIT_INTERRUPTED),
           signal.SIGTERM: ("terminated (SIGTERM)", EXIT_TERMINATED),
           signal.SIGHUP: ("hung up (SIGHUP)", EXIT_HANGUP)}


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: a KeyboardInterrupt, so that it ends a command
    through the same paths as Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(ENDINGS[signum][0])
        self.signum = signum


def ending(exc: KeyboardInterrupt) -> tuple[str, int]:
    """(what happened, the exit status) for Ctrl-C or a ``Stopped``."""
    return ENDINGS[getattr(exc, "signum", signal.SIGINT)]


@contextmanager
def stopping() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Stopped`` inside the block (the handlers that
    were there before are put back after it)."""
    def stop(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

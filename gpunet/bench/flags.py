"""What makes a measurement doubtful, and the marks that say so in results.md and on the terminal.

A measurement is *noisy* when its readings disagree (``NOISY_SPREAD``) and
*under load* when the machine was busy with other work while it ran
(``LOAD_SLACK``): the first catches a case disturbed on some readings, the
second one slowed on all of them. Either way, rerun it before trusting it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

T = TypeVar("T")
LoadReader = Callable[[], float | None]

NOISY_MARK = "⚠"
LOAD_MARK = "⏳"

NOISY_SPREAD = 0.25
"""A measurement is noisy when (max - min) / median of its readings exceeds this:
another process took the cores (or the caches) for part of it."""

LOAD_SLACK = 0.5
"""A case ran *under load* when the machine's 1-minute load average, read
before or after it, exceeds its cores less this slack (``load_limit``). The
load average counts the benchmark itself as about 1 (one busy process), so
above the limit other processes kept more than all the remaining cores but
half of one busy: the benchmark's BLAS threads (one per core it found free) shared
cores with them, and every reading may be slow alike, which the spread does
not show. On one core the limit is 1.5, as the benchmark alone makes 1."""


def load_limit(cores: int) -> float:
    """The 1-minute load average above which a case on ``cores`` cores ran under load."""
    return max(cores, 2) - LOAD_SLACK


def machine_load() -> float | None:
    """The machine's 1-minute load average; None where the system keeps none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@dataclass(frozen=True)
class LoadWatch:
    """Reads the load average (``read``) around each case on a machine of ``cores`` cores."""

    read: LoadReader = machine_load
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)

    def around(self, case: Callable[[], T]) -> tuple[T, dict[str, Any]]:
        """What ``case()`` returns, and the record fields of the load around it:
        ``load_before``, ``load_after`` (None where unknown) and ``under_load``."""
        before = self.read()
        result = case()
        after = self.read()
        known = [load for load in (before, after) if load is not None]
        return result, {"load_before": before, "load_after": after,
                        "under_load": any(load > load_limit(self.cores) for load in known)}


def marks(record: dict[str, Any]) -> str:
    """The marks of a measurement's record, each after a space, e.g. ' ⚠ ⏳ load 2.7'; '' if none."""
    text = f" {NOISY_MARK}" if record.get("noisy") else ""
    if record.get("under_load"):
        peak = max(load for load in (record["load_before"], record["load_after"]) if load is not None)
        text += f" {LOAD_MARK} load {peak:.1f}"
    return text

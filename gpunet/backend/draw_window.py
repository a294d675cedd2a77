"""Which part of a batch's random draw a rank's share of the batch takes."""
from __future__ import annotations

from typing import NamedTuple


class DrawWindow(NamedTuple):
    """A rank's share of a batch's random draw (data-parallel training): its rows
    are rows ``start`` .. of the whole batch's ``rows``, so a draw of shape
    (n, k) takes counters first + start k .. of the whole batch's rows k
    (``Backend.take_draws``), all of which it reserves."""
    rows: int
    start: int

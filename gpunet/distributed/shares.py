"""Which rows of each global batch a rank takes."""
from __future__ import annotations


def share(rows: slice, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``rows`` among ``size`` ranks: the
    rows from start + floor(rank n / size) to start + floor((rank + 1) n / size),
    n = len(rows), so shares differ by at most one row and cover ``rows`` in order."""
    n = rows.stop - rows.start
    return slice(rows.start + rank * n // size, rows.start + (rank + 1) * n // size)


def check_shares(samples: int, batch_size: int, size: int) -> None:
    """ValueError unless each of ``size`` ranks has rows of the data and of
    every full batch."""
    if samples < size:
        raise ValueError(f"{size} ranks need at least {size} training samples, got {samples}")
    if batch_size < size:
        raise ValueError(f"batch size {batch_size} is smaller than the {size} ranks: each rank "
                         "takes a share of every batch, so use a batch size of at least "
                         f"{size}")

"""One seed for everything random in gpunet: initialisation, dropout, shuffling.

``seed(n)`` derives an independent stream per consumer from ``n``
(stream 0: host-side parameter initialisation, stream 1: each backend's
device generator), so adding dropout to a model never changes its initial
weights, and every backend starts from the same initial weights.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

HOST_STREAM = 0
DEVICE_STREAM = 1

_seed: int | None = None
_epoch: int | None = None
_host_rng = np.random.default_rng()
_listeners: list[Callable[[], None]] = []


def seed(n: int) -> None:
    """Seed every random generator gpunet uses, so that runs repeat exactly."""
    global _seed, _epoch, _host_rng
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"seed must be a non-negative integer, got {n!r}")
    _seed, _epoch = int(n), None
    _host_rng = np.random.default_rng(stream_seed(HOST_STREAM))
    for reseed in _listeners:
        reseed()


def start_epoch(epoch: int) -> None:
    """Restart the device generators on a stream of their own for ``epoch``, so
    epoch k's shuffle and dropout masks depend only on the seed and k: a run
    resumed at epoch k repeats an uninterrupted one exactly."""
    global _epoch
    _epoch = int(epoch)
    for reseed in _listeners:
        reseed()


def stream_seed(stream: int) -> int | None:
    """An integer seed for one stream of the current seed (and epoch, once one
    has started); None when unseeded."""
    if _seed is None:
        return None
    key = [_seed, stream] if _epoch is None else [_seed, stream, _epoch]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def host_rng() -> np.random.Generator:
    """The host generator that draws initial parameters, on every backend alike."""
    return _host_rng


def on_seed(reseed: Callable[[], None]) -> None:
    """Register ``reseed()``: called now and after every ``seed()``, it restarts a
    generator from ``stream_seed``."""
    _listeners.append(reseed)
    reseed()

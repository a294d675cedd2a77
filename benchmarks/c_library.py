"""A benchmark's C source built and loaded as gpunet builds its host C
(``gpunet/backend/host_library.py``: cached, no fused multiply-adds)."""
from __future__ import annotations

import ctypes
from pathlib import Path

from gpunet.backend.host_c import SPLITMIX_FLAGS
from gpunet.backend.host_library import HostLibraryError, load


def build(source: Path, flags: list[str], signatures: dict[str, list[type]]) -> ctypes.CDLL:
    """``source`` built with ``flags`` and gpunet's SplitMix64 constants GAMMA,
    MIX1 and MIX2 as -D flags, each function of ``signatures`` given its
    argument types; exits, saying why, where it cannot be."""
    try:
        return load(source, [*SPLITMIX_FLAGS, *flags], signatures)
    except HostLibraryError as exc:
        raise SystemExit(f"{source.stem}: {exc}") from exc

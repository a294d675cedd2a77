"""A benchmark's C source built and loaded as gpunet builds its host C
(``gpunet/backend/host_library.py``: cached, no fused multiply-adds)."""
from __future__ import annotations

import ctypes
from pathlib import Path

from gpunet.backend.host_library import HostLibraryError, load
from gpunet.backend.host_c import STEP_SOURCE as HOST_STEP
from gpunet.backend.host_c import SPLITMIX_FLAGS


def build(source: Path, flags: list[str], signatures: dict[str, list[type]]) -> ctypes.CDLL:
    """``source`` built with ``flags``, gpunet's SplitMix64 constants GAMMA,
    MIX1 and MIX2 as -D flags and gpunet's host_step.c on the include path (a
    source may include it), each function of ``signatures`` given its argument
    types; exits, saying why, where it cannot be."""
    try:
        return load(source, [*SPLITMIX_FLAGS, f"-I{HOST_STEP.parent}", *flags], signatures,
                    includes=[HOST_STEP])
    except HostLibraryError as exc:
        raise SystemExit(f"{source.stem}: {exc}") from exc

"""Data-parallel training: several processes (ranks) train one model as one.

Every rank draws the same global order, takes its contiguous share of each
global batch (``shares``), and the flat gradient buffer is summed across the
ranks once per step (``Communicator.allreduce``) before each rank applies the
same update. NumPy arrays go through MPI (mpi4py), CuPy arrays through NCCL or,
without it, through the host (``device``). ``launch`` starts and joins runs of
the ``gpunet`` command. The names below load their module on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "comm": ("Communicator", "MPICommunicator", "RanksDiverged", "world"),
    "device": ("select_device",),
    "shares": ("check_shares", "share"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'gpunet.distributed' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)

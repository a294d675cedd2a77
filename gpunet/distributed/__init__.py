"""Data-parallel training: several processes (ranks) train one model as one.

Every rank draws the same global order, takes its contiguous share of each
global batch (``shares``), and the flat gradient buffer is summed across the
ranks once per step (``Communicator.allreduce``) before each rank applies the
same update. NumPy arrays go through MPI (mpi4py), CuPy arrays through NCCL or,
without it, through the host (``device``). ``launch`` starts and joins runs of
the ``gpunet`` command. The names below load their module on first use.
"""
from __future__ import annotations

from .._exports import lazy_exports

_EXPORTS = {
    "comm": ("Communicator", "MPICommunicator", "RanksDiverged", "world"),
    "deadline": ("CollectiveTimeout", "DEFAULT_TIMEOUT_S"),
    "device": ("select_device",),
    "shares": ("check_shares", "share"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

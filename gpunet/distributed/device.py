"""Collectives on device (CuPy) arrays: NCCL on the current stream, with no
host synchronisation, or the portable fallback staged through the host.

NCCL comes with CuPy (``cupy.cuda.nccl``: cupy_backends/cuda/libs/nccl.pyx,
NcclCommunicator(ndev, commId, rank), allReduce/broadcast(sendbuf, recvbuf,
count, datatype, op/root, stream)) once the ``nvidia-nccl-cuXX`` wheel is
installed (cupy/_environment.py, ``_get_nccl_from_wheel``). It refuses two
ranks on one GPU; the PyPI MPI wheels are not CUDA-aware, so the fallback
synchronises, copies to the host, reduces with MPI and copies back.
"""
from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np

from ..backend import Array, Backend


class HostRanks(Protocol):
    """What the device collectives take from the communicator (``MPICommunicator``):
    its ranks, and its collectives on host arrays and Python objects."""
    rank: int
    size: int
    local_size: int

    def allreduce(self, array: np.ndarray) -> None: ...

    def broadcast(self, array: np.ndarray, root: int = 0) -> None: ...

    def gather(self, value: Any) -> list[Any]: ...

    def bcast(self, value: Any, root: int = 0) -> Any: ...


class DeviceCollectives(Protocol):
    path: str

    def allreduce(self, array: Array) -> None: ...

    def broadcast(self, array: Array, root: int) -> None: ...


class HostStaged:
    """Each collective: wait for the device, copy to the host, MPI, copy back."""

    path = "host-staged MPI"

    def __init__(self, comm: HostRanks, backend: Backend) -> None:
        self.comm, self.backend = comm, backend

    def allreduce(self, array: Array) -> None:
        self._staged(array, self.comm.allreduce)

    def broadcast(self, array: Array, root: int) -> None:
        self._staged(array, lambda host: self.comm.broadcast(host, root))

    def _staged(self, array: Array, collective: Any) -> None:
        self.backend.synchronize()
        host = np.ascontiguousarray(self.backend.to_numpy(array))
        collective(host)
        array[...] = self.backend.asarray(host, array.dtype)


class Nccl:
    """An NCCL communicator over the MPI ranks, its id sent from rank 0 by MPI;
    each collective is queued on CuPy's current stream."""

    path = "NCCL"

    def __init__(self, comm: HostRanks, nccl: Any, cupy: Any) -> None:
        self.nccl, self.cupy = nccl, cupy
        unique_id = comm.bcast(nccl.get_unique_id() if comm.rank == 0 else None)
        self.communicator = nccl.NcclCommunicator(comm.size, unique_id, comm.rank)
        self.types = {np.dtype(np.float32): nccl.NCCL_FLOAT32,
                      np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def allreduce(self, array: Array) -> None:
        pointer, count, kind, stream = self._operands(array)
        self.communicator.allReduce(pointer, pointer, count, kind, self.nccl.NCCL_SUM, stream)

    def broadcast(self, array: Array, root: int) -> None:
        pointer, count, kind, stream = self._operands(array)
        self.communicator.broadcast(pointer, pointer, count, kind, root, stream)

    def _operands(self, array: Array) -> tuple[int, int, int, int]:
        if array.dtype not in self.types or not array.flags.c_contiguous:
            raise ValueError(f"NCCL collectives take contiguous float32 or float64 arrays, got "
                             f"{array.dtype} of shape {array.shape}")
        return (array.data.ptr, array.size, self.types[array.dtype],
                self.cupy.cuda.get_current_stream().ptr)


def nccl_module() -> tuple[Any, Any] | str:
    """(cupy.cuda.nccl, cupy) when NCCL can be used, else why not."""
    try:
        with warnings.catch_warnings():  # CuPy warns when the library is missing: said below
            warnings.simplefilter("ignore")
            import cupy
            from cupy.cuda import nccl
    except ImportError as exc:
        return f"CuPy is not installed ({exc})"
    if not getattr(nccl, "available", False):
        return "CuPy found no NCCL library (pip install 'gpunet[nccl]' or 'gpunet[nccl-cuda12]')"
    return nccl, cupy


def device_collectives(comm: HostRanks, backend: Backend,
                       use_nccl: bool) -> DeviceCollectives:
    """NCCL where every rank can use it (the choice is agreed among the ranks,
    and each rank of a machine needs a GPU of its own), else HostStaged."""
    found = nccl_module() if use_nccl else None
    usable = isinstance(found, tuple) and comm.local_size <= backend.device_count()
    if all(comm.gather(usable)):
        return Nccl(comm, *found)
    return HostStaged(comm, backend)


def select_device(backend: Backend, local_rank: int) -> None:
    """Make rank ``local_rank`` of a machine use GPU local_rank mod the GPUs there."""
    count = backend.device_count()
    if count > 1:
        backend.use_device(local_rank % count)

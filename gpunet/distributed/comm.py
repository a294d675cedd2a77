"""The communicator: this process's rank among the ``size`` that train one
model, and the collectives data-parallel training needs."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..backend import Array, backend_of
from .device import DeviceCollectives, device_collectives

if TYPE_CHECKING:
    from ..layers import Layer


class RanksDiverged(RuntimeError):
    """The ranks' copies of the model are no longer the same."""


class Communicator:
    """One process training alone, rank 0 of 1: every collective leaves its
    input as it is. ``MPICommunicator`` is the same over several processes."""

    rank, size, local_rank, local_size = 0, 1, 0, 1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} rank {self.rank} of {self.size}>"

    # -- the collectives: every rank calls each, in the same order -----------
    def allreduce(self, array: Array) -> None:
        """Sum ``array`` (a contiguous backend array) over the ranks, in place."""

    def broadcast(self, array: Array, root: int = 0) -> None:
        """Overwrite ``array`` (a contiguous backend array) with rank ``root``'s."""

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The sum over the ranks of the host float64 array ``values``."""
        return values

    def minimum(self, value: int) -> int:
        """The smallest of the ranks' integers ``value``."""
        return value

    def gather(self, value: Any) -> list[Any]:
        """Every rank's Python object ``value``, in rank order, on every rank."""
        return [value]

    def bcast(self, value: Any, root: int = 0) -> Any:
        """Rank ``root``'s Python object ``value``, on every rank."""
        return value

    # -- built from them -----------------------------------------------------
    def allreduce_gradients(self, model: Layer) -> None:
        """Sum ``model``'s gradients over the ranks: its flat buffer in one call."""
        flat = model.flat()
        for grad in [flat[1]] if flat is not None else model.grads():
            self.allreduce(grad)

    def broadcast_all(self, arrays: Sequence[Array], root: int = 0) -> None:
        """``broadcast`` each of ``arrays``."""
        for array in arrays:
            self.broadcast(array, root)

    def check_same(self, arrays: Sequence[Array], what: str) -> None:
        """RanksDiverged, on every rank, unless ``arrays`` hold the same bytes on
        every rank (compared by digest; MPI does not promise bitwise-equal sums)."""
        digest = hashlib.blake2b(digest_size=16)
        for array in arrays:
            digest.update(np.ascontiguousarray(backend_of(array).to_numpy(array)).tobytes())
        digests = self.gather(digest.hexdigest())
        differ = [rank for rank, value in enumerate(digests) if value != digests[0]]
        if differ:
            raise RanksDiverged(f"{what} differ across ranks: rank(s) "
                                f"{', '.join(map(str, differ))} disagree with rank 0")


class MPICommunicator(Communicator):
    """The ranks of an MPI communicator (default ``MPI.COMM_WORLD``), through
    mpi4py. NumPy arrays are reduced by MPI in place; device arrays by NCCL on
    the current stream where each rank of a machine has a GPU of its own and
    ``nccl`` allows, else staged through the host (``device.py``)."""

    def __init__(self, mpi_comm: Any = None, *, nccl: bool = True) -> None:
        from mpi4py import MPI
        self.MPI = MPI
        self.mpi = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank, self.size = self.mpi.Get_rank(), self.mpi.Get_size()
        node = self.mpi.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.nccl = nccl
        self._device: DeviceCollectives | None = None

    def allreduce(self, array: Array) -> None:
        if isinstance(array, np.ndarray):
            self.mpi.Allreduce(self.MPI.IN_PLACE, _contiguous(array), op=self.MPI.SUM)
        else:
            self.device(array).allreduce(array)

    def broadcast(self, array: Array, root: int = 0) -> None:
        if isinstance(array, np.ndarray):
            self.mpi.Bcast(_contiguous(array), root=root)
        else:
            self.device(array).broadcast(array, root)

    def sum(self, values: np.ndarray) -> np.ndarray:
        total = np.array(values, np.float64)
        self.mpi.Allreduce(self.MPI.IN_PLACE, total, op=self.MPI.SUM)
        return total

    def minimum(self, value: int) -> int:
        return self.mpi.allreduce(int(value), op=self.MPI.MIN)

    def gather(self, value: Any) -> list[Any]:
        return self.mpi.allgather(value)

    def bcast(self, value: Any, root: int = 0) -> Any:
        return self.mpi.bcast(value, root=root)

    def device(self, array: Array) -> DeviceCollectives:
        """The collectives for ``array``'s device, chosen on first use (collectively)."""
        if self._device is None:
            self._device = device_collectives(self, backend_of(array), self.nccl)
        return self._device

    @property
    def device_path(self) -> str:
        """How device arrays are reduced: "NCCL", "host-staged MPI", or "none yet"."""
        return "none yet" if self._device is None else self._device.path


def _contiguous(array: np.ndarray) -> np.ndarray:
    if not array.flags.c_contiguous:
        raise ValueError(f"collectives need contiguous arrays, got one of shape {array.shape} "
                         f"and strides {array.strides}")
    return array


def world() -> Communicator:
    """MPI.COMM_WORLD's ranks when this process is one of several, else the
    single process (also when mpi4py is not installed)."""
    try:
        comm = MPICommunicator()
    except ImportError:
        return Communicator()
    return comm if comm.size > 1 else Communicator()

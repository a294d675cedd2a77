"""The communicator: this process's rank among the ``size`` that train one
model, and the collectives data-parallel training needs."""
from __future__ import annotations

import hashlib
import pickle
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..backend import Array, backend_of
from ..files import escaped
from .deadline import DEFAULT_TIMEOUT_S, CollectiveTimeout, wait
from .device import DeviceCollectives, device_collectives

if TYPE_CHECKING:
    from ..layers import Layer


ROLL_CALL, HERE = 0x6770, 0x6771  # tags of a timed-out rank's question and the answers
ROLL_CALL_S = 1.0  # how long a rank whose collective timed out waits for the answers


class RanksDiverged(RuntimeError):
    """The ranks' copies of the model are no longer the same."""


class Communicator:
    """One process training alone, rank 0 of 1: every collective leaves its
    input as it is. ``MPICommunicator`` is the same over several processes."""

    rank, size, local_rank, local_size = 0, 1, 0, 1
    timeout: float | None = None  # seconds a collective may take (MPICommunicator)
    what: str | None = None  # what the collectives under way are for (``named``)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} rank {self.rank} of {self.size}>"

    def named(self, what: str) -> _Named:
        """A context in which the collectives are ``what`` (e.g. "the gradients'
        allreduce") where a CollectiveTimeout says which did not finish."""
        return _Named(self, what)

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
        with self.named("the gradients' allreduce"):
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
        with self.named(f"the check that {what} are the same"):
            digests = self.gather(digest.hexdigest())
        differ = [rank for rank, value in enumerate(digests) if value != digests[0]]
        if differ:
            raise RanksDiverged(f"{what} differ across ranks: rank(s) "
                                f"{', '.join(map(str, differ))} disagree with rank 0")


class MPICommunicator(Communicator):
    """The ranks of an MPI communicator (default ``MPI.COMM_WORLD``), through
    mpi4py. NumPy arrays are reduced by MPI in place; device arrays by NCCL on
    the current stream where each rank of a machine has a GPU of its own and
    ``nccl`` allows, else staged through the host (``device.py``).

    Each MPI collective is non-blocking, waited for by ``deadline.wait`` (no core
    spun while a peer is late) for at most ``timeout`` seconds (None: for ever);
    then CollectiveTimeout, saying which ranks did not answer a roll call. NCCL's
    collectives, queued on the device, are not watched."""

    def __init__(self, mpi_comm: Any = None, *, nccl: bool = True,
                 timeout: float | None = DEFAULT_TIMEOUT_S) -> None:
        from mpi4py import MPI
        self.MPI = MPI
        self.mpi = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank, self.size = self.mpi.Get_rank(), self.mpi.Get_size()
        node = self.mpi.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.nccl = nccl
        self.timeout = timeout
        self._device: DeviceCollectives | None = None
        self._count = 0  # collectives started, the same on every rank for the same one
        self._waiting = ""  # the collective this rank waits in, told to a roll call
        self._hosts: list[str] | None = None  # every rank's host, once known
        self._names: tuple[Any, np.ndarray] | None = None  # their allgather, under way
        self._sent: list[Any] = []  # roll calls and answers in flight
        self._stuck: list[Any] = []  # requests that timed out, their buffers kept alive

    def allreduce(self, array: Array) -> None:
        if isinstance(array, np.ndarray):
            self._complete(lambda: self.mpi.Iallreduce(self.MPI.IN_PLACE, _contiguous(array),
                                                       op=self.MPI.SUM), "an allreduce")
        else:
            self.device(array).allreduce(array)

    def broadcast(self, array: Array, root: int = 0) -> None:
        if isinstance(array, np.ndarray):
            self._complete(lambda: self.mpi.Ibcast(_contiguous(array), root=root), "a broadcast")
        else:
            self.device(array).broadcast(array, root)

    def sum(self, values: np.ndarray) -> np.ndarray:
        total = np.array(values, np.float64)
        self._complete(lambda: self.mpi.Iallreduce(self.MPI.IN_PLACE, total, op=self.MPI.SUM),
                       "a sum")
        return total

    def minimum(self, value: int) -> int:
        smallest = np.array([value], np.int64)
        self._complete(lambda: self.mpi.Iallreduce(self.MPI.IN_PLACE, smallest,
                                                   op=self.MPI.MIN), "a minimum")
        return int(smallest[0])

    def gather(self, value: Any) -> list[Any]:
        data = np.frombuffer(pickle.dumps(value), np.uint8)
        sizes = np.empty(self.size, np.int64)
        self._complete(lambda: self.mpi.Iallgather(np.array([data.size], np.int64), sizes),
                       "an allgather")
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
        every = np.empty(int(sizes.sum()), np.uint8)
        self._complete(lambda: self.mpi.Iallgatherv(
            data, [every, sizes.tolist(), offsets, self.MPI.BYTE]), "an allgather")
        return [pickle.loads(every[start:start + size].tobytes())
                for start, size in zip(offsets, sizes.tolist())]

    def bcast(self, value: Any, root: int = 0) -> Any:
        ours = self.rank == root
        data = np.frombuffer(pickle.dumps(value), np.uint8).copy() if ours else None
        size = np.array([data.size if ours else 0], np.int64)
        self._complete(lambda: self.mpi.Ibcast(size, root=root), "a broadcast")
        data = data if ours else np.empty(int(size[0]), np.uint8)
        self._complete(lambda: self.mpi.Ibcast(data, root=root), "a broadcast")
        return value if ours else pickle.loads(data.tobytes())

    def device(self, array: Array) -> DeviceCollectives:
        """The collectives for ``array``'s device, chosen on first use (collectively)."""
        if self._device is None:
            self._device = device_collectives(self, backend_of(array), self.nccl)
        return self._device

    @property
    def device_path(self) -> str:
        """How device arrays are reduced: "NCCL", "host-staged MPI", or "none yet"."""
        return "none yet" if self._device is None else self._device.path

    # -- waiting, and saying who did not come --------------------------------
    def _complete(self, start: Callable[[], Any], kind: str) -> None:
        """Start a non-blocking collective and wait for it for at most ``timeout``;
        CollectiveTimeout naming it (``named``, else its ``kind``) and the ranks
        that did not answer if it did not finish."""
        if self._hosts is None and self._names is None:  # every rank, at its first collective
            self._names = self._start_host_names()
        self._count += 1
        self._waiting = what = self.what or kind
        request = start()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        if not wait(request.Test, deadline, self._answer):
            self._stuck.append(request)
            raise CollectiveTimeout(self._timed_out(what))
        if self._names is not None and self._names[0].Test():
            self._hosts = [bytes(row).rstrip(b"\0").decode(errors="replace")
                           for row in self._names[1]]
            self._names = None

    def _start_host_names(self) -> tuple[Any, np.ndarray]:
        """An allgather of every rank's host name, left to finish alongside the
        collectives that follow."""
        width = self.MPI.MAX_PROCESSOR_NAME
        names = np.zeros((self.size, width), np.uint8)
        mine = self.MPI.Get_processor_name().encode()[:width]
        names[self.rank, :len(mine)] = np.frombuffer(mine, np.uint8)
        return self.mpi.Iallgather(self.MPI.IN_PLACE, names), names

    def _answer(self) -> None:
        """Answer each roll call that has come (``_roll_call``): which collective
        this rank waits in."""
        status = self.MPI.Status()
        while self.mpi.iprobe(self.MPI.ANY_SOURCE, ROLL_CALL, status):
            self.mpi.recv(source=status.Get_source(), tag=ROLL_CALL)
            self._sent.append(self.mpi.isend((self._count, self._waiting),
                                             dest=status.Get_source(), tag=HERE))
        self._sent = [request for request in self._sent if not request.Test()]

    def _roll_call(self) -> dict[int, tuple[int, str]]:
        """Ask every other rank which collective it waits in; the answers that
        come within ``ROLL_CALL_S``, by rank: (its collectives started, what)."""
        answers: dict[int, tuple[int, str]] = {}
        status = self.MPI.Status()
        self._sent += [self.mpi.isend(None, dest=rank, tag=ROLL_CALL)
                       for rank in range(self.size) if rank != self.rank]

        def all_answered() -> bool:
            while self.mpi.iprobe(self.MPI.ANY_SOURCE, HERE, status):
                answers[status.Get_source()] = self.mpi.recv(source=status.Get_source(), tag=HERE)
            return len(answers) == self.size - 1

        wait(all_answered, time.monotonic() + ROLL_CALL_S, self._answer)
        return answers

    def _timed_out(self, what: str) -> str:
        """One line: ``what`` did not finish in time, and where the other ranks are."""
        answers = self._roll_call()
        silent = [rank for rank in range(self.size) if rank != self.rank and rank not in answers]
        elsewhere = [f"{self._named([rank])} is waiting in {their_what}"
                     for rank, (count, their_what) in sorted(answers.items())
                     if count != self._count]
        said = ([f"{self._named(silent)} did not answer"] if silent else []) + elsewhere
        return (f"{what} did not finish within {self.timeout:g} s: "
                + ("; ".join(said) if said else "every rank is waiting in it"))

    def _named(self, ranks: list[int]) -> str:
        """"rank 1 (host b)", "ranks 1 (host b), 3 (host c)": hosts where known."""
        named = [f"{rank} (host {escaped(self._hosts[rank])})" if self._hosts else str(rank)
                 for rank in ranks]
        return f"rank{'s' if len(ranks) > 1 else ''} {', '.join(named)}"


class _Named:
    """``Communicator.named``'s context (a class: a generator's costs about 15 us
    an allreduce here, a third of the allreduce)."""

    __slots__ = ("comm", "what", "kept")

    def __init__(self, comm: Communicator, what: str) -> None:
        self.comm, self.what, self.kept = comm, what, None

    def __enter__(self) -> None:
        self.kept, self.comm.what = self.comm.what, self.what

    def __exit__(self, *exc: object) -> None:
        self.comm.what = self.kept


def _contiguous(array: np.ndarray) -> np.ndarray:
    if not array.flags.c_contiguous:
        raise ValueError(f"collectives need contiguous arrays, got one of shape {array.shape} "
                         f"and strides {array.strides}")
    return array


def world(timeout: float | None = DEFAULT_TIMEOUT_S) -> Communicator:
    """MPI.COMM_WORLD's ranks when this process is one of several, each
    collective limited to ``timeout`` seconds (None: none), else the single
    process (also when mpi4py is not installed)."""
    try:
        comm = MPICommunicator(timeout=timeout)
    except ImportError:
        return Communicator()
    return comm if comm.size > 1 else Communicator()

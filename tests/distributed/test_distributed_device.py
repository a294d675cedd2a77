"""Collectives on device arrays (gpunet/distributed/device.py): the NCCL path
driven without a device through fake ``cupy`` and ``nccl`` modules, the
host-staged path on NumPy arrays, the choice between them, and on a GPU both
for real."""
from __future__ import annotations

import ctypes
import json
import re
import subprocess
import sys
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from gpunet.distributed import Communicator
from gpunet.distributed import device
from gpunet.distributed.device import (HostStaged, Nccl, device_collectives, nccl_module,
                                       select_device)
from helpers.parallel_fit import assert_same_run, launch, mpi_missing, one_process, train_on_ranks

needs_mpi = pytest.mark.skipif(mpi_missing() is not None,
                               reason=f"multi-rank runs need MPI: {mpi_missing()}")
STREAM = 0x5EED  # the fake current stream's pointer
RANK_0_ID = b"rank 0's unique id"


class FakeNccl(ModuleType):
    """The names of cupy.cuda.nccl that Nccl uses, the communicator it makes
    being itself; every call is recorded in ``calls``. Its collectives work on
    the memory they are given, as NCCL's do, between this rank and one other,
    ``peer`` (that rank's array): allReduce writes the sum of the send buffer
    and the peer's into the receive buffer, broadcast the root's values."""

    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 7, 8, 0
    available = True

    def __init__(self, peer: np.ndarray | None = None) -> None:
        super().__init__("cupy.cuda.nccl")
        self.calls: list[tuple] = []
        self.peer, self.rank = peer, None

    def get_unique_id(self) -> bytes:
        self.calls.append(("get_unique_id",))
        return RANK_0_ID

    def NcclCommunicator(self, ndev: int, comm_id: bytes, rank: int) -> FakeNccl:  # noqa: N802
        self.calls.append(("NcclCommunicator", ndev, comm_id, rank))
        self.rank = rank
        return self

    def memory(self, pointer: int, count: int, kind: int) -> np.ndarray:
        """The ``count`` elements of NCCL type ``kind`` at ``pointer``, as an array over them."""
        dtype = np.dtype({self.NCCL_FLOAT32: np.float32, self.NCCL_FLOAT64: np.float64}[kind])
        return np.frombuffer((ctypes.c_char * (count * dtype.itemsize)).from_address(pointer),
                             dtype)

    def allReduce(self, send, receive, count, kind, op, stream) -> None:  # noqa: N802
        self.calls.append(("allReduce", send, receive, count, kind, op, stream))
        if self.peer is not None:
            assert op == self.NCCL_SUM
            total = self.memory(send, count, kind) + self.peer.ravel()
            self.memory(receive, count, kind)[:] = total

    def broadcast(self, send, receive, count, kind, root, stream) -> None:
        self.calls.append(("broadcast", send, receive, count, kind, root, stream))
        if self.peer is not None:
            values = self.memory(send, count, kind) if root == self.rank else self.peer.ravel()
            self.memory(receive, count, kind)[:] = values


def fake_cupy(nccl: ModuleType) -> ModuleType:
    """A ``cupy`` whose ``cuda`` holds ``nccl`` and a current stream at ``STREAM``."""
    cupy = ModuleType("cupy")
    cupy.cuda = ModuleType("cupy.cuda")
    cupy.cuda.nccl = nccl
    cupy.cuda.get_current_stream = lambda: SimpleNamespace(ptr=STREAM)
    return cupy


class DeviceArray:
    """What Nccl reads of a cupy.ndarray, over host memory."""

    def __init__(self, host: np.ndarray) -> None:
        self.dtype, self.size, self.shape = host.dtype, host.size, host.shape
        self.flags = host.flags
        self.data = SimpleNamespace(ptr=host.ctypes.data)


class Ranks:
    """Rank ``rank`` of ``size``: ``bcast`` gives rank 0's id, ``gather`` the
    others' ``votes`` after this rank's; both are recorded."""

    def __init__(self, rank: int = 0, size: int = 2, local_size: int = 1,
                 votes: tuple = (True,)) -> None:
        self.rank, self.size, self.local_size, self.votes = rank, size, local_size, votes
        self.sent: list[tuple] = []

    def bcast(self, value, root: int = 0):
        self.sent.append(("bcast", value, root))
        return RANK_0_ID

    def gather(self, value) -> list:
        self.sent.append(("gather", value))
        return [value, *self.votes]


# -- NCCL, without a device ------------------------------------------------------
def use_cupy(monkeypatch, cupy: ModuleType) -> ModuleType:
    """Make ``import cupy`` and ``from cupy.cuda import nccl`` find ``cupy``."""
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cupy.cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", cupy.cuda.nccl)
    return cupy


def test_the_module_imports_and_says_why_without_cupy():
    code = ("import sys; sys.modules['cupy'] = None\n"
            "from gpunet.distributed.device import nccl_module; print(nccl_module())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "import of cupy halted" in done.stdout, done.stdout  # the reason, not a traceback


def test_nccl_module_says_why_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    reason = nccl_module()
    assert isinstance(reason, str) and "import of cupy halted" in reason


def test_nccl_module_says_why_without_the_nccl_library(monkeypatch):
    nccl = FakeNccl()
    nccl.available = False
    use_cupy(monkeypatch, fake_cupy(nccl))
    reason = nccl_module()
    assert isinstance(reason, str) and "no NCCL library" in reason and "gpunet[nccl" in reason


def test_nccl_module_gives_nccl_and_cupy_where_nccl_is_there(monkeypatch):
    nccl = FakeNccl()
    cupy = use_cupy(monkeypatch, fake_cupy(nccl))
    assert nccl_module() == (nccl, cupy)


def test_rank_0_makes_the_nccl_id_and_sends_it():
    nccl, ranks = FakeNccl(), Ranks(rank=0)
    Nccl(ranks, nccl, fake_cupy(nccl))
    assert nccl.calls == [("get_unique_id",), ("NcclCommunicator", 2, RANK_0_ID, 0)]
    assert ranks.sent == [("bcast", RANK_0_ID, 0)]


def test_other_ranks_take_rank_0s_nccl_id():
    nccl, ranks = FakeNccl(), Ranks(rank=1)
    Nccl(ranks, nccl, fake_cupy(nccl))
    assert nccl.calls == [("NcclCommunicator", 2, RANK_0_ID, 1)]
    assert ranks.sent == [("bcast", None, 0)]


@pytest.mark.parametrize("dtype, kind", [("float32", FakeNccl.NCCL_FLOAT32),
                                         ("float64", FakeNccl.NCCL_FLOAT64)])
def test_nccl_collectives_work_in_place_on_the_current_stream(dtype, kind):
    """The array itself holds the ranks' sum after allreduce and the root's values
    after broadcast, every element in its own dtype (float64 values a float32
    reading would round); each call names its memory twice and the current stream."""
    fine = np.arange(12, dtype=dtype).reshape(3, 4) + np.asarray(2.0 ** -40, dtype)
    peer = np.arange(100, 112, dtype=dtype).reshape(3, 4) / 4
    nccl = FakeNccl(peer=peer.copy())
    collectives = Nccl(Ranks(), nccl, fake_cupy(nccl))
    host = fine.copy()
    array, pointer = DeviceArray(host), host.ctypes.data
    collectives.allreduce(array)
    np.testing.assert_array_equal(host, fine + peer)
    collectives.broadcast(array, 0)  # this rank's values stay
    np.testing.assert_array_equal(host, fine + peer)
    collectives.broadcast(array, 1)
    np.testing.assert_array_equal(host, peer)
    assert host.dtype == dtype and host.ctypes.data == pointer and array.data.ptr == pointer
    assert nccl.calls[-3:] == [("allReduce", pointer, pointer, 12, kind, nccl.NCCL_SUM, STREAM),
                               ("broadcast", pointer, pointer, 12, kind, 0, STREAM),
                               ("broadcast", pointer, pointer, 12, kind, 1, STREAM)]
    assert collectives.path == "NCCL"


@pytest.mark.parametrize("host, described", [
    (np.zeros(4, np.float16), "float16 of shape (4,)"),
    (np.zeros((3, 4), np.float32)[:, ::2], "float32 of shape (3, 2)"),
], ids=["float16", "strided"])
def test_nccl_refuses_arrays_it_cannot_reduce(host, described):
    nccl = FakeNccl()
    collectives = Nccl(Ranks(), nccl, fake_cupy(nccl))
    made = list(nccl.calls)
    for collective in (collectives.allreduce, lambda array: collectives.broadcast(array, 0)):
        with pytest.raises(ValueError, match=re.escape(
                f"NCCL collectives take contiguous float32 or float64 arrays, got {described}")):
            collective(DeviceArray(host))
    assert nccl.calls == made


# -- through the host ---------------------------------------------------------------
class Doubling(Communicator):
    """Two ranks holding the same values, recording when each collective runs."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def allreduce(self, array) -> None:
        self.events.append("allreduce")
        array *= 2

    def broadcast(self, array, root: int = 0) -> None:
        self.events.append(f"broadcast from {root}")
        array[...] = root


def test_host_staged_waits_for_the_device_then_writes_the_result_back(numpy_backend,
                                                                      monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(numpy_backend, "synchronize", lambda: events.append("synchronize"))
    staged = HostStaged(Doubling(events), numpy_backend)
    values = np.arange(12.0).reshape(3, 4)
    staged.allreduce(values[:, ::2])  # strided: staged through a contiguous copy
    staged.broadcast(values[0], 5)
    np.testing.assert_array_equal(values, [[5, 5, 5, 5], [8, 5, 12, 7], [16, 9, 20, 11]])
    assert events == ["synchronize", "allreduce", "synchronize", "broadcast from 5"]
    assert staged.path == "host-staged MPI"


HOST_STAGED_RUN = """
import json
import numpy as np
import gpunet
from gpunet.distributed import MPICommunicator
from gpunet.distributed.device import HostStaged

comm = MPICommunicator()
staged = HostStaged(comm, gpunet.get_backend("numpy"))
summed = np.arange(12.0).reshape(3, 4) * (comm.rank + 1)
staged.allreduce(summed)
strided = np.ones((3, 4), np.float32) * (comm.rank + 1)
staged.allreduce(strided[:, ::2])
sent = np.full(3, float(comm.rank))
staged.broadcast(sent, 1)
results = comm.gather([summed.tolist(), strided.tolist(), sent.tolist()])
if comm.rank == 0:
    print(json.dumps(results))
"""


@needs_mpi
def test_host_staged_sums_and_broadcasts_over_two_ranks():
    done = launch(2, "-c", HOST_STAGED_RUN)
    assert done.returncode == 0, done.stdout + done.stderr
    summed = (np.arange(12.0).reshape(3, 4) * 3).tolist()
    for rank, (got_sum, got_strided, got_sent) in enumerate(json.loads(done.stdout)):
        assert got_sum == summed
        assert got_strided == [[3, rank + 1, 3, rank + 1]] * 3
        assert got_sent == [1.0] * 3


# -- which path ------------------------------------------------------------------------
@pytest.fixture
def nccl_here(monkeypatch) -> FakeNccl:
    nccl = FakeNccl()
    monkeypatch.setattr(device, "nccl_module", lambda: (nccl, fake_cupy(nccl)))
    return nccl


def gpus(count: int) -> SimpleNamespace:
    return SimpleNamespace(device_count=lambda: count)


def test_nccl_where_every_rank_has_a_gpu_of_its_own_and_nccl(nccl_here):
    ranks = Ranks(local_size=2)
    assert type(device_collectives(ranks, gpus(2), True)) is Nccl
    assert ranks.sent[0] == ("gather", True)


@pytest.mark.parametrize("machine, devices, use_nccl", [
    ({"local_size": 3}, 2, True),          # more ranks on this machine than GPUs
    ({"votes": (True, False)}, 1, True),   # another rank cannot use NCCL
    ({}, 1, False),                        # NCCL not asked for
], ids=["ranks-share-a-gpu", "another-rank-cannot", "not-asked-for"])
def test_host_staged_unless_every_rank_can_use_nccl(nccl_here, machine, devices, use_nccl):
    ranks, backend = Ranks(**machine), gpus(devices)
    staged = device_collectives(ranks, backend, use_nccl)
    assert type(staged) is HostStaged and (staged.comm, staged.backend) == (ranks, backend)
    assert nccl_here.calls == []
    assert ranks.sent[0][0] == "gather"  # every rank votes, so all choose alike


def test_host_staged_without_nccl(monkeypatch):
    monkeypatch.setattr(device, "nccl_module", lambda: "NCCL unavailable: no NCCL library")
    ranks = Ranks(votes=(False,))
    assert type(device_collectives(ranks, gpus(1), True)) is HostStaged
    assert ranks.sent == [("gather", False)]


@pytest.mark.parametrize("count, local_rank, used", [(1, 0, []), (1, 3, []), (2, 0, [0]),
                                                     (3, 4, [1]), (4, 3, [3])])
def test_the_ranks_of_a_machine_use_its_gpus_in_turn(count, local_rank, used):
    chosen = []
    backend = SimpleNamespace(device_count=lambda: count, use_device=chosen.append)
    select_device(backend, local_rank)
    assert chosen == used


# -- on a GPU ----------------------------------------------------------------------------
@pytest.mark.gpu
def test_one_rank_through_nccl_is_the_identity_on_the_current_stream():
    found = nccl_module()
    if isinstance(found, str):
        pytest.skip(found)
    nccl, cupy = found
    collectives = Nccl(Communicator(), nccl, cupy)
    calls = []
    real = collectives.communicator

    class Recording:
        def allReduce(self, *args):  # noqa: N802
            calls.append(args)
            real.allReduce(*args)

    collectives.communicator = Recording()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        values = cupy.arange(1000, dtype=cupy.float32)
        collectives.allreduce(values)
        stream.synchronize()
    assert calls[0][5] == stream.ptr
    np.testing.assert_array_equal(cupy.asnumpy(values), np.arange(1000, dtype=np.float32))


@pytest.mark.gpu
@needs_mpi
def test_two_ranks_sharing_one_gpu_train_as_one_process_through_the_host(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # for the ranks: one GPU between them
    expected, history = one_process(dtype="float32", epochs=1, backend="cupy")
    got = train_on_ranks(2, tmp_path / "out.npz", "--backend", "cupy", "--dtype", "float32",
                         "--epochs", "1")
    assert str(got["device_path"]) == "host-staged MPI"
    assert_same_run(got, expected, history, 1e-5)

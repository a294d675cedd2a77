"""What only several ranks show, each pinned by a test that fails when the bug is
planted: the smallest first non-finite row over the ranks (MIN, not MAX; a rank
without one does not offer row 0), rank 0's optimizer state sent to all and
compared after each epoch, the shared draws switched off after a shared epoch,
a step's losses being this rank's rows, a machine's ranks (not the world's)
sharing its cores, and the cores being those this process may run on."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

import gpunet
from gpunet import threads
from gpunet.backend.draw_window import DrawWindow
from gpunet.distributed import Communicator, RanksDiverged, share
from gpunet.distributed.comm import MPICommunicator
from gpunet.layers.sequential import forward_share
from gpunet.train import EpochMetrics, NonFiniteLoss, steps
from helpers.parallel_fit import launch, mpi_missing

needs_mpi = pytest.mark.skipif(mpi_missing() is not None,
                               reason=f"multi-rank runs need MPI: {mpi_missing()}")


class TwoRanks(Communicator):
    """Rank 0 of 2 whose collectives leave their input as it is; records broadcasts."""

    size = 2

    def __init__(self) -> None:
        self.broadcast_arrays = []

    def broadcast(self, array, root=0):
        self.broadcast_arrays.append(array)


def problem(rows: int = 16):
    model = gpunet.Sequential([gpunet.Linear(4, 3), gpunet.Tanh(), gpunet.Dropout(0.2),
                               gpunet.Linear(3, 2)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 4)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[np.arange(rows) % 2]
    return model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1, 0.9), x, y


# -- the first non-finite row over the ranks --------------------------------------
NON_FINITE = """
import sys
import numpy as np
import gpunet
from gpunet.distributed import world
from gpunet.train import NonFiniteLoss
comm = world()
rng = np.random.default_rng(0)
x = rng.standard_normal((71, 12))
y = np.eye(5)[rng.integers(0, 5, 71)]
x[int(sys.argv[1])] = 1e200  # finite, but its squared error overflows
model = gpunet.Sequential([gpunet.Linear(12, 5, dtype="float64")])
try:
    gpunet.fit(model, gpunet.SSE(), gpunet.GradientDescent(0.1), x, y, epochs=1,
               batch_size=16, shuffle=False, progress=False, comm=comm)
except NonFiniteLoss as exc:
    print(f"rank {comm.rank}: step {exc.step}", flush=True)
print(f"rank {comm.rank}: minimum {comm.minimum(10 + comm.rank)}", flush=True)
"""


@needs_mpi
@pytest.mark.parametrize("row, step", [
    (41, 3),  # rank 1's rows of batch 3 (40-47); rank 0's first bad row, after it, is 48
    (69, 5),  # the tail batch (64-70): rank 1's rows (67-70); rank 0 has no bad row
])
def test_non_finite_on_some_ranks_names_the_first_bad_step(tmp_path, row, step):
    script = tmp_path / "non_finite.py"
    script.write_text(NON_FINITE)
    done = launch(2, str(script), str(row))
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout  # not line by line: mpiexec may interleave the ranks' writes
    assert sorted(re.findall(r"rank (\d): step (\d+)", said)) == [("0", str(step)),
                                                                 ("1", str(step))], said
    assert sorted(re.findall(r"rank (\d): minimum (\d+)", said)) == [("0", "10"),
                                                                    ("1", "10")], said


class OtherRank(Communicator):
    """Rank 0 of 2 whose partner's first non-finite row is ``theirs``."""

    size = 2

    def __init__(self, theirs: int) -> None:
        self.theirs = theirs

    def sum(self, values):
        return values + np.array([np.inf, 0.0])

    def minimum(self, value):
        return min(value, self.theirs)


def test_a_rank_without_a_bad_row_leaves_the_first_to_the_others(numpy_backend):
    metrics = EpochMetrics(numpy_backend, 64, 16, epoch=1, comm=OtherRank(40))
    with pytest.raises(NonFiniteLoss) as error:  # none here: not row 0, but the other's 40
        metrics.read(64)
    assert error.value.step == 3
    metrics.losses[20:] = np.nan
    with pytest.raises(NonFiniteLoss) as error:
        metrics.read(64)
    assert error.value.step == 2


# -- rank 0's optimizer state -------------------------------------------------------
def test_the_optimizer_state_is_sent_from_rank_0():
    model, loss, optimizer, x, y = problem()
    gpunet.fit(model, loss, optimizer, x, y, epochs=1, batch_size=4, progress=False)
    comm = TwoRanks()  # resuming: the state exists before the shared run
    gpunet.fit(model, loss, optimizer, x, y, epochs=2, first_epoch=1, batch_size=4,
               progress=False, comm=comm)
    sent = {id(array) for array in comm.broadcast_arrays}
    assert optimizer.state() and all(id(state) in sent for state in optimizer.state())


class StateDiffers(TwoRanks):
    """Rank 0 of 2 whose partner's digest covers the parameters only: equal to this
    rank's only if the optimizer state is left out of the comparison."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def gather(self, value):
        return [value, Digest.of(self.model.params())]


class Digest(Communicator):
    """The digest check_same compares, of the arrays given."""

    def gather(self, value):
        self.value = value
        return [value]

    @classmethod
    def of(cls, arrays) -> str:
        digest = cls()
        digest.check_same(list(arrays), "")
        return digest.value


def test_the_optimizer_state_is_in_the_divergence_check():
    model, loss, optimizer, x, y = problem()
    with pytest.raises(RanksDiverged, match="after epoch 1"):
        gpunet.fit(model, loss, optimizer, x, y, epochs=1, batch_size=4, progress=False,
                   comm=StateDiffers(model))


# -- the shared draws and a step's rows -----------------------------------------------
def test_a_share_s_dropout_masks_are_its_rows_of_the_whole_batch_s(numpy_backend):
    """The draw window is an argument of the forward pass, passed down to each
    Dropout (also in a nested Sequential); the draws after it are the stream's own."""
    x = np.ones((7, 5), np.float32)
    dropout = gpunet.Dropout(0.5)
    model = gpunet.Sequential([gpunet.Tanh(), gpunet.Sequential([dropout])])
    numpy_backend.restart(5)
    model.forward(x)
    whole, after = dropout.mask.copy(), numpy_backend.uniform((3,), "float32")
    for rank in range(3):
        mine = share(slice(0, 7), rank, 3)
        numpy_backend.restart(5)
        forward_share(model, x[mine], DrawWindow(7, mine.start))
        np.testing.assert_array_equal(dropout.mask, whole[mine])
        np.testing.assert_array_equal(numpy_backend.uniform((3,), "float32"), after)


def test_a_step_s_losses_are_this_rank_s_rows():
    model, loss, optimizer, x, y = problem(15)
    done = [(step.rows, len(step.losses)) for step in
            steps(model, loss, optimizer, x, y, batch_size=4, comm=TwoRanks())]
    assert done == [(slice(0, 4), 2), (slice(4, 8), 2), (slice(8, 12), 2), (slice(12, 15), 1)]


# -- the ranks of a machine and its cores ------------------------------------------------
class NodeOfOne:
    """MPI's world of 2 ranks on two machines, one rank each: what MPICommunicator asks."""

    def Get_rank(self):
        return 1

    def Get_size(self):
        return 2

    def Split_type(self, kind):
        return SimpleNamespace(Get_rank=lambda: 0, Get_size=lambda: 1, Free=lambda: None)


@needs_mpi
def test_the_ranks_of_a_machine_are_its_own_not_the_world_s():
    comm = MPICommunicator(NodeOfOne())
    assert (comm.rank, comm.size, comm.local_rank, comm.local_size) == (1, 2, 0, 1)


def test_a_rank_shares_the_cores_it_may_run_on(monkeypatch):
    """Six cores in this process's affinity mask on a machine of 64: 3 for each of
    the machine's 2 ranks (of 4 in all)."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(6)))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)
    assert threads.chosen_threads("auto", SimpleNamespace(size=4, local_size=2)).count == 3

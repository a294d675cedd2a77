"""Data-parallel training (gpunet.distributed): several MPI ranks train exactly
as one process does, a failing or diverging rank ends the run on every rank,
and the pieces (shares, the single communicator, shared dropout draws, the
loss of a share) hold without MPI."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import gpunet
from gpunet.backend.draw_window import DrawWindow
from gpunet.distributed import Communicator, RanksDiverged, check_shares, share, world
from gpunet.train import steps
from helpers.parallel_fit import (RUNNER, assert_same_run, launch, mpi_missing, one_process,
                          train_on_ranks)

needs_mpi = pytest.mark.skipif(mpi_missing() is not None,
                               reason=f"multi-rank runs need MPI: {mpi_missing()}")


class TwoRanks(Communicator):
    """Rank 0 of 2 for the argument checks: its collectives are the single process's."""

    size = 2


# -- several ranks train as one process does ---------------------------------
@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("loss, step_path", [("xent", "planned"), ("sse", "eager")])
@pytest.mark.parametrize("dtype, epochs, tolerance", [("float64", 2, 1e-12),
                                                      ("float32", 1, 1e-5)])
def test_ranks_train_as_one_process(tmp_path, ranks, loss, step_path, dtype, epochs,
                                    tolerance):
    expected, history = one_process(dtype=dtype, epochs=epochs, loss=loss)
    got = train_on_ranks(ranks, tmp_path / "out.npz", "--dtype", dtype,
                         "--epochs", str(epochs), "--loss", loss)
    assert (int(got["size"]), str(got["step_path"])) == (ranks, step_path)
    assert_same_run(got, expected, history, tolerance)


@needs_mpi
@pytest.mark.parametrize("loss", ["xent", "sse"])
def test_a_tail_batch_smaller_than_the_ranks_leaves_a_rank_without_rows(tmp_path, loss):
    assert share(slice(64, 66), 0, 3) == slice(64, 64)  # 66 samples, batch 16: rank 0 idles
    expected, history = one_process(loss=loss, samples=66)
    assert_same_run(train_on_ranks(3, tmp_path / "out.npz", "--samples", "66", "--loss", loss),
                    expected, history)


@needs_mpi
def test_rank_0s_weights_and_random_key_reach_every_rank(tmp_path):
    expected, history = one_process()
    assert_same_run(train_on_ranks(3, tmp_path / "out.npz", "--seed-by-rank"), expected, history)


@needs_mpi
def test_a_rank_that_raises_ends_every_rank(tmp_path):
    done = launch(2, RUNNER, str(tmp_path / "out.npz"), "--fail-rank", "1", timeout=10)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "RuntimeError: rank 1 fails on purpose" in done.stderr
    assert not (tmp_path / "out.npz").exists()


@needs_mpi
def test_ranks_whose_parameters_differ_all_raise_ranks_diverged(tmp_path):
    done = launch(2, RUNNER, str(tmp_path / "out.npz"), "--perturb-rank", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    message = ("RanksDiverged: after epoch 2, the parameters differ across ranks: "
               "rank(s) 1 disagree with rank 0")
    for rank in (0, 1):  # not line by line: mpiexec may interleave the ranks' writes
        assert f"rank {rank}: {message}" in done.stdout, done.stdout + done.stderr


# -- shares of a batch -------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("rows", [0, 1, 2, 7, 16])
def test_shares_cover_the_rows_in_order_and_differ_by_at_most_one(rows, size):
    shares = [share(slice(10, 10 + rows), rank, size) for rank in range(size)]
    covered = [i for part in shares for i in range(part.start, part.stop)]
    assert covered == list(range(10, 10 + rows))
    lengths = [part.stop - part.start for part in shares]
    assert max(lengths) - min(lengths) <= 1
    assert lengths.count(0) == max(size - rows, 0)


@pytest.mark.parametrize("samples, batch, message", [
    (2, 8, "3 ranks need at least 3 training samples, got 2"),
    (30, 2, "batch size 2 is smaller than the 3 ranks: each rank takes a share of every "
            "batch, so use a batch size of at least 3"),
])
def test_check_shares_names_the_numbers(samples, batch, message):
    with pytest.raises(ValueError) as error:
        check_shares(samples, batch, 3)
    assert str(error.value) == message


def test_check_shares_takes_a_share_for_every_rank():
    check_shares(3, 3, 3)


# -- the single process -------------------------------------------------------
def test_the_single_communicator_leaves_everything_as_it_is():
    comm = Communicator()
    assert (comm.rank, comm.size, comm.local_rank, comm.local_size) == (0, 1, 0, 1)
    assert repr(comm) == "<Communicator rank 0 of 1>"
    array = np.arange(6.0)
    comm.allreduce(array)
    comm.broadcast(array, 0)
    comm.broadcast_all([array])
    np.testing.assert_array_equal(array, np.arange(6.0))
    np.testing.assert_array_equal(comm.sum(np.array([1.5, 2.0])), [1.5, 2.0])
    assert comm.minimum(4) == 4
    thing = object()
    assert comm.gather(thing) == [thing] and comm.bcast(thing) is thing


def test_the_single_communicator_keeps_gradients_and_finds_one_copy_the_same():
    model = gpunet.Sequential([gpunet.Linear(3, 2), gpunet.Tanh(), gpunet.Linear(2, 1)])
    model.backward(model.forward(np.ones((4, 3), np.float32)))
    before = [g.copy() for g in model.grads()]
    comm = Communicator()
    comm.allreduce_gradients(model)
    for grad, old in zip(model.grads(), before):
        np.testing.assert_array_equal(grad, old)
    comm.check_same(model.params(), "the parameters")


class Gathered(Communicator):
    """Rank 0 of several, the others' digests given: "same" as rank 0's, or another."""

    def __init__(self, *others: str) -> None:
        self.others = others

    def gather(self, value):
        return [value, *[value if other == "same" else other for other in self.others]]


class Recording(Communicator):
    """A communicator that records what it is asked to reduce or send."""

    def __init__(self) -> None:
        self.calls = []

    def allreduce(self, array):
        self.calls.append(("allreduce", array))

    def broadcast(self, array, root=0):
        self.calls.append(("broadcast", array, root))

    def gather(self, value):
        self.calls.append(("gather", value))
        return [value]


def test_gradients_are_reduced_in_one_call_from_the_flat_buffer():
    model = gpunet.Sequential([gpunet.Linear(3, 2), gpunet.Tanh(), gpunet.Linear(2, 1)])
    comm = Recording()
    comm.allreduce_gradients(model)
    assert len(comm.calls) == 1 and comm.calls[0][1] is model.flat()[1]


def test_without_a_flat_buffer_each_gradient_is_reduced():
    layer = gpunet.Linear(3, 2)
    assert layer.flat() is None
    comm = Recording()
    comm.allreduce_gradients(layer)
    assert [call[1] for call in comm.calls] == list(layer.grads())
    assert all(a is b for (_, a), b in zip(comm.calls, layer.grads()))


def test_broadcast_all_sends_each_array_from_the_root():
    arrays, comm = [np.zeros(2), np.ones(3)], Recording()
    comm.broadcast_all(arrays, root=1)
    assert [(name, array is sent, root) for (name, array, root), sent
            in zip(comm.calls, arrays)] == [("broadcast", True, 1)] * 2


def digest_of(arrays) -> str:
    comm = Recording()
    comm.check_same(arrays, "the parameters")
    return comm.calls[0][1]


def test_the_digest_is_of_the_arrays_bytes():
    arrays = [np.arange(4.0), np.ones((2, 2), np.float32)]
    changed = [arrays[0].copy(), arrays[1].copy()]
    changed[1][1, 0] = np.nextafter(np.float32(1), np.float32(2))
    assert digest_of(arrays) == digest_of([a.copy() for a in arrays])
    assert digest_of(arrays) != digest_of(changed)
    assert digest_of(arrays) != digest_of(arrays[:1])
    assert digest_of([arrays[1].T]) == digest_of([np.ascontiguousarray(arrays[1].T)])
    Gathered(digest_of(arrays)).check_same(arrays, "the parameters")
    with pytest.raises(RanksDiverged, match=r"rank\(s\) 1 disagree with rank 0$"):
        Gathered(digest_of(changed)).check_same(arrays, "the parameters")


def test_check_same_names_the_ranks_that_differ():
    arrays = [np.arange(4.0)]
    Gathered("same", "same").check_same(arrays, "the parameters")
    with pytest.raises(RanksDiverged, match=r"^after epoch 3, the parameters differ across "
                                            r"ranks: rank\(s\) 2, 3 disagree with rank 0$"):
        Gathered("same", "other", "other").check_same(arrays, "after epoch 3, the parameters")


def test_world_is_the_single_process_when_not_launched():
    done = subprocess.run([sys.executable, "-c", "from gpunet.distributed import world; "
                           "print(repr(world()))"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "<Communicator rank 0 of 1>", done.stderr


def test_world_is_the_single_process_without_mpi4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert type(world()) is Communicator


# -- a share of a batch draws its rows of the whole batch's draw ----------------
@pytest.mark.parametrize("rows, size", [(7, 3), (2, 3), (16, 2)])
def test_a_share_draws_its_rows_of_the_whole_batchs_draw(numpy_backend, rows, size):
    shape = (rows, 5)
    numpy_backend.restart(99)
    whole, after = numpy_backend.uniform(shape, "float64"), numpy_backend.uniform((3,), "float64")
    for rank in range(size):
        mine = share(slice(0, rows), rank, size)
        numpy_backend.restart(99)
        part = numpy_backend.uniform((mine.stop - mine.start, 5), "float64",
                                     window=DrawWindow(rows, mine.start))
        np.testing.assert_array_equal(part, whole[mine])
        assert numpy_backend.drawn == rows * 5  # the whole batch's counters
        np.testing.assert_array_equal(numpy_backend.uniform((3,), "float64"), after)


# -- the loss of a share is its rows of the whole batch's ------------------------
@pytest.mark.parametrize("loss", [gpunet.SSE(), gpunet.SoftmaxCrossEntropy(),
                                  gpunet.SSE(reduction="sum")], ids=repr)
def test_the_loss_of_a_share_is_scaled_by_the_whole_batch(loss):
    rng = np.random.default_rng(3)
    predicted = rng.standard_normal((7, 4))
    actual = np.eye(4)[rng.integers(0, 4, 7)]
    losses, gradient = loss.sample_losses_and_gradient(predicted, actual)
    part_losses, part_gradient = loss.sample_losses_and_gradient(predicted[2:5], actual[2:5],
                                                                 loss.batch_scale(7))
    np.testing.assert_array_equal(part_losses, losses[2:5])
    np.testing.assert_array_equal(part_gradient, gradient[2:5])
    alone = loss.sample_losses_and_gradient(predicted[2:5], actual[2:5])[1]
    np.testing.assert_allclose(part_gradient, alone * (3 / 7 if loss.reduction == "mean" else 1),
                               rtol=1e-14)


# -- graph replay is one process's ------------------------------------------------
def small_problem() -> tuple:
    model = gpunet.Sequential([gpunet.Linear(4, 3), gpunet.Tanh(), gpunet.Linear(3, 2)])
    x = np.zeros((8, 4), np.float32)
    y = np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    return model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1, 0.9), x, y


def test_fit_refuses_graph_replay_on_several_ranks():
    with pytest.raises(ValueError, match="graph replay runs one process, not 2 ranks: "
                                         "use graph 'auto' or 'off'"):
        gpunet.fit(*small_problem(), epochs=1, batch_size=4, progress=False, graph="on",
                   comm=TwoRanks())


def test_steps_refuse_graph_replay_on_several_ranks():
    with pytest.raises(ValueError, match="graph replay runs one process, not 2 ranks"):
        next(steps(*small_problem(), batch_size=4, graph="on", comm=TwoRanks()))


def test_fit_checks_the_shares_before_training():
    model, *rest = small_problem()
    before = [p.copy() for p in model.params()]
    with pytest.raises(ValueError, match="batch size 1 is smaller than the 2 ranks"):
        gpunet.fit(model, *rest, epochs=1, batch_size=1, progress=False, comm=TwoRanks())
    for param, old in zip(model.params(), before):
        np.testing.assert_array_equal(param, old)

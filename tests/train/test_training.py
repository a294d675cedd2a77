"""train_epoch and accuracy: the notebook's loop, in mini-batches."""
import numpy as np
import pytest

import gpunet
from helpers.arrays import host
from gpunet.distributed import Communicator
from gpunet.train import EagerStep, GraphStep, PlannedStep, StepRows, choose_steps, steps
from helpers.random_reference import Recorder, device_key, permutation


def small_problem(backend, *first_layers):
    gpunet.seed(0)
    model = gpunet.Sequential([*first_layers, gpunet.Linear(5, 8, backend=backend), gpunet.Tanh(),
                               gpunet.Linear(8, 3, backend=backend)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 5)).astype(np.float32)
    y = gpunet.one_hot_encode(rng.integers(0, 3, 10), 3, backend=backend)
    return model, x, y


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_epoch_loss_is_the_sum_of_sample_losses_for_any_batch_size(backend, reduction):
    model, x, y = small_problem(backend)
    loss = gpunet.SoftmaxCrossEntropy(reduction)
    expected = sum(float(loss.loss(model.forward(xi), yi)) for xi, yi in zip(x, host(backend, y)))
    frozen = gpunet.GradientDescent(0.0)
    for batch_size in [1, 3, 10, 64]:
        total = gpunet.train_epoch(model, loss, frozen, x, y, batch_size)
        assert float(total) == pytest.approx(expected, rel=1e-5)


def test_training_lowers_the_loss(backend):
    model, x, y = small_problem(backend)
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1, 0.9)
    first = float(gpunet.train_epoch(model, loss, optimizer, x, y, 2))
    for _ in range(100):
        last = float(gpunet.train_epoch(model, loss, optimizer, x, y, 2))
    assert last < first / 2
    assert gpunet.accuracy(model, x, y) == 1.0


@pytest.mark.parametrize("epoch", [
    lambda *args, **batch_size: gpunet.train_epoch(*args, **batch_size),
    lambda *args, **batch_size: [*steps(*args, **batch_size)],
    lambda *args, **batch_size: gpunet.fit(*args, epochs=1, progress=False, **batch_size)])
def test_train_epoch_steps_and_fit_take_one_sample_at_a_time_by_default(backend, epoch):
    """The notebook's loop: without a batch size, a step per sample."""
    trained = []
    for batch_size in [{}, {"batch_size": 1}]:
        model, x, y = small_problem(backend)
        epoch(model, gpunet.SSE(), gpunet.GradientDescent(0.1), x, y, **batch_size)
        trained.append([host(backend, p) for p in model.params()])
    for default, one in zip(*trained, strict=True):
        np.testing.assert_array_equal(default, one)


def rows_seen(recorder, x):
    """The indices in ``x`` of the rows the recorder saw, step after step."""
    return [int(np.flatnonzero((x == row).all(axis=1))[0])
            for batch in recorder.inputs for row in np.atleast_2d(batch)]


def test_shuffled_epochs_repeat_with_the_seed(backend):
    """Each shuffled epoch takes the rows in a new order (not the stored one,
    nor the previous epoch's), drawn from the seed's stream: the same orders
    and the same parameters again with the same seed."""
    runs = []
    for _ in range(2):
        recorder = Recorder()
        model, x, y = small_problem(backend, recorder)
        orders = []
        for _ in range(3):
            recorder.inputs.clear()
            gpunet.train_epoch(model, gpunet.SSE(), gpunet.GradientDescent(0.1), x, y, 3,
                               shuffle=True)
            orders.append(rows_seen(recorder, x))
        runs.append((orders, [host(backend, p).copy() for p in model.params()]))
    orders = runs[0][0]
    assert all(sorted(order) == list(range(10)) for order in orders)
    assert len({tuple(order) for order in orders + [list(range(10))]}) == 4, orders
    # the seed's stream (gpunet.seed(0), no epoch): epoch e draws counters 10 (e - 1) ..
    assert orders == [permutation(device_key(0), 10, first) for first in (0, 10, 20)]
    assert runs[1][0] == orders
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_train_epoch_shuffles_only_when_asked(backend):
    recorder = Recorder()
    model, x, y = small_problem(backend, recorder)
    gpunet.train_epoch(model, gpunet.SSE(), gpunet.GradientDescent(0.1), x, y, 4)
    assert rows_seen(recorder, x) == list(range(10))
    recorder.inputs.clear()
    gpunet.seed(5)
    gpunet.train_epoch(model, gpunet.SSE(), gpunet.GradientDescent(0.1), x, y, 4, shuffle=True)
    assert rows_seen(recorder, x) == permutation(device_key(5), 10) != list(range(10))


@pytest.mark.parametrize("shuffle", [False, True])
def test_steps_name_the_rows_they_took(backend, shuffle):
    """10 rows at batch size 4: steps of rows 0..3, 4..7 and the shorter 8..9,
    each with the losses of those rows of the epoch's order (a frozen model)."""
    recorder = Recorder()
    model, x, y = small_problem(backend, recorder)
    expected = ((host(backend, model.forward(x)) - host(backend, y)) ** 2).sum(axis=1)
    recorder.inputs.clear()
    taken = list(steps(model, gpunet.SSE(), gpunet.GradientDescent(0.0), x, y, 4, shuffle=shuffle))
    assert [step.rows for step in taken] == [slice(0, 4), slice(4, 8), slice(8, 10)]
    order = rows_seen(recorder, x)
    assert order == (permutation(device_key(0), 10) if shuffle else list(range(10)))
    for step in taken:
        np.testing.assert_allclose(host(backend, step.losses),
                                   expected[np.array(order)[step.rows]], rtol=1e-6)


def test_a_steps_losses_are_a_view_of_the_epochs_made_when_asked_for():
    """StepRows keeps the epoch's losses and this rank's rows, not a view made each
    step (host work a GPU's replayed step would wait on): ``losses`` is that view."""
    epoch_losses = np.arange(10, dtype=np.float64)
    step = StepRows(slice(4, 8), epoch_losses, slice(5, 7))  # a rank's share of rows 4..7
    assert step.epoch_losses is epoch_losses
    assert step.losses.base is epoch_losses and step.losses.tolist() == [5.0, 6.0]
    epoch_losses[5] = -1.0  # written later, as the device writes each step's losses
    assert step.losses.tolist() == [-1.0, 6.0]


def test_data_shapes_are_checked(numpy_backend):
    model, x, y = small_problem(numpy_backend)
    with pytest.raises(ValueError, match=r"^inputs and targets must have the same number of "
                                         r"rows, got 10 and 9$"):
        gpunet.train_epoch(model, gpunet.SSE(), gpunet.GradientDescent(), x, y[:9])
    with pytest.raises(ValueError, match=r"^inputs must be a 2-D array .*, got shape \(5,\)$"):
        gpunet.train_epoch(model, gpunet.SSE(), gpunet.GradientDescent(), x[0], y[0])


# -- one step interface, chosen once per epoch; one random-stream rule ------------
def dropout_problem(backend):
    gpunet.seed(1)  # the first Linear is made before small_problem seeds
    return small_problem(backend, gpunet.Linear(5, 5, backend=backend), gpunet.Dropout(0.5))


@pytest.mark.parametrize("loss, graph, full_kind, tail_kind", [
    (gpunet.SoftmaxCrossEntropy(), "off", GraphStep, PlannedStep),  # one process: not captured
    (gpunet.SoftmaxCrossEntropy(), "on", GraphStep, PlannedStep),
    (gpunet.SSE(), "on", EagerStep, EagerStep)])  # SSE does not plan: every batch eager
def test_the_steps_are_chosen_once_per_epoch(numpy_backend, loss, graph, full_kind, tail_kind):
    """Where the model plans, the tail batch is planned too, with a plan of its
    own, the full batches' kept beside it."""
    model, x, y = dropout_problem(numpy_backend)
    optimizer = gpunet.Momentum(0.1)
    full, tail = choose_steps(model, loss, optimizer, numpy_backend, x, y, 4, None, graph,
                              Communicator())
    assert type(full) is full_kind and type(tail) is tail_kind
    assert (full is tail) == (full_kind is EagerStep)
    if tail_kind is PlannedStep:
        assert (full.graph.plan.batch, tail.plan.batch) == (4, len(x) % 4)
        again, _ = choose_steps(model, loss, optimizer, numpy_backend, x, y, 4, None, graph,
                                Communicator())
        assert again.graph is full.graph  # the tail's plan left the full batches' graph alone


def test_a_numbered_epoch_draws_from_its_own_stream(numpy_backend):
    """train_epoch(epoch=k) is fit's epoch k, whatever was drawn before it."""
    trained = []
    for numbered in (True, False):
        model, x, y = dropout_problem(numpy_backend)
        loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1, 0.9)
        if numbered:
            numpy_backend.random_bits(7)  # draws the epoch's restart leaves behind
            gpunet.train_epoch(model, loss, optimizer, x, y, 4, shuffle=True, epoch=2)
        else:
            gpunet.fit(model, loss, optimizer, x, y, epochs=2, first_epoch=1, batch_size=4,
                       progress=False)
        trained.append([p.copy() for p in model.params()])
    for a, b in zip(*trained, strict=True):
        np.testing.assert_array_equal(a, b)

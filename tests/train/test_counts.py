"""Counts (epochs, batch sizes, subsets): any integer operator.index
takes, NumPy's too, never a bool; everywhere the one ValueError line of check_count."""
from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.experiments import run_fizzbuzz, run_xor
from gpunet.train import check_count, steps


def problem(backend):
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(4, 3, backend=backend)])
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    y = gpunet.one_hot_encode(np.arange(8) % 3, 3, backend=backend)
    return model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1, 0.9), x, y


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3), np.array(3)])
def test_an_integer_becomes_a_python_int(value):
    assert type(check_count("epochs", value, 0)) is int
    assert check_count("epochs", value, 0) == 3


@pytest.mark.parametrize("value, minimum, kind", [
    (True, 0, "non-negative"), (np.True_, 0, "non-negative"), (0, 1, "positive"),
    (np.int64(-1), 0, "non-negative"), (2.0, 1, "positive"), ("2", 1, "positive"),
    (None, 1, "positive")])
def test_anything_else_is_one_value_error_line(value, minimum, kind):
    with pytest.raises(ValueError) as info:
        check_count("batch_size", value, minimum)
    assert str(info.value) == f"batch_size must be a {kind} integer, got {value!r}"


def test_fit_and_evaluate_take_numpy_counts(numpy_backend):
    model, loss, optimizer, x, y = problem(numpy_backend)
    history = gpunet.fit(model, loss, optimizer, x, y, epochs=np.int64(3),
                         first_epoch=np.int32(1), batch_size=np.int64(4), progress=False)
    assert [stats.epoch for stats in history] == [2, 3]
    assert all(type(stats.epoch) is int for stats in history)
    assert gpunet.evaluate(model, loss, x, y, batch_size=np.int64(3))[1] >= 0


def test_train_epoch_and_steps_take_numpy_batch_sizes(numpy_backend):
    model, loss, optimizer, x, y = problem(numpy_backend)
    assert gpunet.train_epoch(model, loss, optimizer, x, y, np.int64(3)).shape == ()
    rows = [step.rows for step in steps(model, loss, optimizer, x, y, np.int16(5))]
    assert rows == [slice(0, 5), slice(5, 8)]


@pytest.mark.parametrize("call, name", [
    (lambda m, l, o, x, y: gpunet.fit(m, l, o, x, y, epochs=True, progress=False), "epochs"),
    (lambda m, l, o, x, y: gpunet.fit(m, l, o, x, y, epochs=1, first_epoch=-1), "first_epoch"),
    (lambda m, l, o, x, y: gpunet.evaluate(m, l, x, y, batch_size=0), "batch_size"),
    (lambda m, l, o, x, y: gpunet.evaluate(m, l, x, y, batch_size=np.True_), "batch_size"),
    (lambda m, l, o, x, y: gpunet.train_epoch(m, l, o, x, y, 2.0), "batch_size"),
    (lambda m, l, o, x, y: next(steps(m, l, o, x, y, False)), "batch_size")])
def test_bad_counts_are_refused_by_name(numpy_backend, call, name):
    with pytest.raises(ValueError, match=f"^{name} must be a (positive|non-negative) integer, "):
        call(*problem(numpy_backend))


def test_the_experiments_take_numpy_counts():
    assert len(run_xor(epochs=np.int64(2), batch_size=np.int64(4)).losses) == 2
    assert len(run_fizzbuzz(epochs=np.uint16(1), batch_size=np.int64(64)).losses) == 1
    with pytest.raises(ValueError, match="^batch_size must be a positive integer, got True$"):
        run_xor(epochs=1, batch_size=True)


def test_load_mnist_takes_numpy_subsets(fake_dir):  # noqa: F811
    _, directory = fake_dir
    data = gpunet.load_mnist("mnist", directory, backend="numpy", download=False,
                             progress=False, train_subset=np.int64(2), test_subset=np.uint8(3))
    assert (len(data.train_x), len(data.test_x)) == (2, 3)
    for subset in ("train_subset", "test_subset"):
        with pytest.raises(ValueError, match=f"^{subset} must be a positive integer, got 0$"):
            gpunet.load_mnist("mnist", directory, download=False, **{subset: 0})


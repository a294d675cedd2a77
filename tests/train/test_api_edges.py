"""The Python API's edges: each bad argument is one ValueError line at the call,
naming it, from one check (``train.check_data``) that fit, evaluate,
train_epoch, steps and accuracy share; never NumPy's message, a silent
broadcast, a 0.0 or a ZeroDivisionError."""
from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet import train

LOSS = gpunet.SoftmaxCrossEntropy()


def problem(n=12):
    """A model of 6 inputs and 3 outputs (a Dropout and a Tanh between), and data for it."""
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(6, 8, backend="numpy"), gpunet.Dropout(0.2),
                               gpunet.Tanh(), gpunet.Linear(8, 3, backend="numpy")])
    x = np.random.default_rng(0).standard_normal((n, 6)).astype(np.float32)
    return model, x, gpunet.one_hot_encode(np.arange(n) % 3, 3, backend="numpy")


CALLS = {
    "fit": lambda m, x, y: gpunet.fit(m, LOSS, gpunet.Momentum(0.1), x, y, epochs=1,
                                      batch_size=4, progress=False),
    "evaluate": lambda m, x, y: gpunet.evaluate(m, LOSS, x, y),
    "train_epoch": lambda m, x, y: gpunet.train_epoch(m, LOSS, gpunet.Momentum(0.1), x, y, 4),
    "steps": lambda m, x, y: train.steps(m, LOSS, gpunet.Momentum(0.1), x, y, 4),  # not run
    "accuracy": lambda m, x, y: gpunet.accuracy(m, x, y),
}


def data(case):
    model, x, y = problem()
    return model, *{
        "inputs 5 wide": (x[:, :5], y, r"inputs have 5 columns, but the model takes 6 a row"),
        "targets 1 wide": (x, y[:, :1], r"targets have 1 column, but the model gives 3 a row"),
        "targets 2 wide": (x, y[:, :2], r"targets have 2 columns, but the model gives 3 a row"),
        "targets 20 wide": (x, np.zeros((12, 20), np.float32),
                            r"targets have 20 columns, but the model gives 3 a row"),
        "no rows": (x[:0], y[:0], r"inputs must be a 2-D array with at least one row "
                                  r"\(N, columns\), got shape \(0, 6\)"),
        "one sample": (x[0], y[0], r"inputs must be a 2-D array .*, got shape \(6,\)"),
        "rows differ": (x, y[:11], "inputs and targets must have the same number of rows, "
                                   "got 12 and 11"),
        "not numbers": (x, "abc", "targets must be an array of numbers: "),
    }[case]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("case", ["inputs 5 wide", "targets 1 wide", "targets 2 wide",
                                  "targets 20 wide", "no rows", "one sample", "rows differ",
                                  "not numbers"])
def test_bad_data_is_one_value_error_naming_it(call, case):
    model, x, y, message = data(case)
    before = [p.copy() for p in model.params()]
    with pytest.raises(ValueError, match=f"^{message}") as info:
        CALLS[call](model, x, y)
    assert "\n" not in str(info.value)
    for a, b in zip(before, model.params(), strict=True):
        np.testing.assert_array_equal(a, b)  # nothing trained


def test_a_model_of_unknown_widths_is_checked_for_rows_only():
    class Passthrough(gpunet.layers.Layer):
        def forward(self, input):
            return input

    model = gpunet.Sequential([Passthrough()])
    assert model.widths() == (None, None)
    assert gpunet.accuracy(model, np.eye(3), np.eye(3)) == 1.0
    with pytest.raises(ValueError, match="^inputs and targets must have the same number"):
        gpunet.accuracy(model, np.eye(3), np.eye(3)[:2])


@pytest.mark.parametrize("layers, widths", [
    (lambda: [gpunet.Linear(6, 8), gpunet.Tanh(), gpunet.Linear(8, 3)], (6, 3)),
    (lambda: [gpunet.Dropout(0.1), gpunet.Linear(6, 8), gpunet.Relu()], (6, 8)),
    (lambda: [gpunet.Sequential([gpunet.Sigmoid(), gpunet.Linear(2, 4)]), gpunet.Tanh()], (2, 4)),
    (lambda: [gpunet.Tanh()], (None, None))])
def test_widths(layers, widths):
    assert gpunet.Sequential(layers()).widths() == widths


@pytest.mark.parametrize("test, message", [
    (lambda x, y: x, "test must be an (inputs, targets) pair, got a ndarray"),
    (lambda x, y: (x, y, y), "test must be an (inputs, targets) pair, got a tuple of 3"),
    (lambda x, y: (x, y[:5]), "test inputs and test targets must have the same number of "
                              "rows, got 12 and 5"),
    (lambda x, y: (x[:, :4], y), "test inputs have 4 columns, but the model takes 6 a row"),
    (lambda x, y: (x[:0], y[:0]), "test inputs must be a 2-D array with at least one row "
                                  "(N, columns), got shape (0, 6)")])
def test_a_bad_test_set_is_refused_before_the_first_epoch(test, message):
    model, x, y = problem()
    ended = []
    with pytest.raises(ValueError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        gpunet.fit(model, LOSS, gpunet.Momentum(0.1), x, y, epochs=2, progress=False,
                   test=test(x, y), on_epoch_end=ended.append)
    assert ended == []


@pytest.mark.parametrize("argument, value, kind", [
    ("first_epoch", -1, "non-negative"), ("first_epoch", 1.5, "non-negative"),
    ("first_epoch", True, "non-negative"), ("epochs", 2.0, "non-negative"),
    ("batch_size", 10.5, "positive")])
def test_fit_counts(argument, value, kind):
    model, x, y = problem()
    arguments = {"epochs": 2, argument: value}
    with pytest.raises(ValueError, match=f"^{argument} must be a {kind} integer, got {value!r}$"):
        gpunet.fit(model, LOSS, gpunet.Momentum(0.1), x, y, progress=False, **arguments)


@pytest.mark.parametrize("batch_size", [0, 10.5, -3, "10"])
def test_evaluate_batch_size(batch_size):
    model, x, y = problem()
    with pytest.raises(ValueError, match=f"^batch_size must be a positive integer, "
                                         f"got {batch_size!r}$"):
        gpunet.evaluate(model, LOSS, x, y, batch_size=batch_size)


@pytest.mark.parametrize("where, name", [("inputs", "inputs"), ("targets", "targets")])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data_is_named_not_blamed_on_the_learning_rate(where, name, bad):
    model, x, y = problem()
    (x if where == "inputs" else y)[7, 1] = bad
    with pytest.raises(ValueError) as info:
        gpunet.fit(model, LOSS, gpunet.Momentum(0.1), x, y, epochs=1, progress=False)
    assert str(info.value) == (f"{name} hold a non-finite value (NaN or infinity) in row 7: "
                               "training on it gives a non-finite loss")
    assert not isinstance(info.value, gpunet.NonFiniteLoss)


def test_one_layer_used_twice_is_refused_naming_it():
    shared = gpunet.Linear(4, 4)
    with pytest.raises(ValueError, match=r"^Sequential: layers\[2\] is Linear\(4, 4, "
                                         r"dtype=float32\) again, the same object as layers\[0\]"):
        gpunet.Sequential([shared, gpunet.Tanh(), shared])
    tanh = gpunet.Tanh()
    with pytest.raises(ValueError, match=r"^Sequential: layers\[1\]\.layers\[1\] is Tanh\(\) "
                                         r"again, the same object as layers\[0\]\.layers\[1\]"):
        gpunet.Sequential([gpunet.Sequential([gpunet.Linear(4, 4), tanh]),
                           gpunet.Sequential([gpunet.Linear(4, 4), tanh])])


def test_a_model_may_sit_in_several_networks():
    """The rule is within one network: a trained model wrapped again is fine."""
    inner = gpunet.Sequential([gpunet.Linear(4, 4), gpunet.Tanh()])
    gpunet.Sequential([inner, gpunet.Linear(4, 2)])
    gpunet.Sequential([inner, gpunet.Linear(4, 3)])

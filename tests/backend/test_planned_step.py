"""The planned step's output stage with one-hot targets read as classes
(``target_classes``): the numbers of the general stage, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from gpunet.backend.graph_step import graph_state

DTYPES = [np.float32, np.float64]


def bits(array: np.ndarray) -> np.ndarray:
    """``array``'s bit patterns: -0.0 and 0.0 differ, as do NaNs of other payloads."""
    return array.view(f"u{array.dtype.itemsize}") if array.dtype.kind == "f" else array


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_hot_targets_give_their_classes_and_places_in_a_batch(numpy_backend, dtype):
    labels = np.array([2, 0, 1, 2, 2, 1, 0])
    found = numpy_backend.target_classes(np.eye(3, dtype=dtype)[labels], 3)
    np.testing.assert_array_equal(found.classes, labels)
    # row r of a batch of 3 starts at (r mod 3) * 3 in the batch's flattened logits
    np.testing.assert_array_equal(found.picks, [2, 3, 7, 2, 5, 7, 0])


@pytest.mark.parametrize("targets", [
    [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]],   # soft
    [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]],   # two 1s beside a row of none: N ones in all
    [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]],   # no class
    [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]],   # not 1
    [[-1.0, 1.0, 1.0], [0.0, 1.0, 0.0]],  # sums to 1
    [[np.nan, 0.0, 0.0], [0.0, 1.0, 0.0]],
])
def test_targets_that_are_not_one_hot_have_no_classes(numpy_backend, targets):
    assert numpy_backend.target_classes(np.array(targets, np.float32), 2) is None


def logits(rows: int, k: int, dtype: type, seed: int) -> np.ndarray:
    """Logits over several scales, with the edges: logits 0.9 max apart (a
    target's log-probability -inf), and a row whose loss is 0 (the others'
    exponentials underflow)."""
    rng = np.random.default_rng(seed)
    z = (rng.uniform(-1, 1, (rows, k)) * 10.0 ** rng.uniform(0, 3, (rows, 1))).astype(dtype)
    big = 0.9 * np.finfo(dtype).max
    z[0, :2] = big, -big
    z[1, :] = -np.finfo(dtype).max / 4
    z[1, 1] = 0.0
    return z


def stage(backend, z, bias, a, scale, state, classes):
    """(gradient, losses, hits, db) of the output stage on a copy of ``z``."""
    gradient, db = np.full(z.shape, np.nan, z.dtype), np.full(z.shape[-1], np.nan, z.dtype)
    losses, hits = np.full(len(a), np.nan), np.zeros(len(a), bool)
    backend.dense_softmax_cross_entropy(z.copy(), bias, a, scale, gradient, losses, hits, db,
                                        state, classes)
    return gradient, losses, hits, db


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("at_state", [False, True])
def test_the_output_stage_with_classes_gives_the_general_numbers_bit_for_bit(numpy_backend,
                                                                            dtype, at_state):
    """Losses (a 0 among them, and an inf), hits, gradient and bias gradient,
    for a batch on its own or at a graph state's rows of an epoch's targets."""
    batch, k = 8, 10
    z = logits(batch, k, dtype, seed=3)
    labels = np.random.default_rng(4).integers(0, k, 3 * batch)
    labels[batch:batch + 2] = 1, 1  # the edge rows' targets: -inf and 0 log-probabilities
    epoch = np.eye(k, dtype=dtype)[labels]
    bias = np.zeros(k, dtype)
    state = graph_state(batch, 0, 0) if at_state else None
    a = epoch if at_state else epoch[batch:2 * batch]
    classes = numpy_backend.target_classes(a, batch)
    general = stage(numpy_backend, z, bias, a, 1 / batch, state, None)
    read = stage(numpy_backend, z, bias, a, 1 / batch, state, classes)
    for got, want in zip(read, general, strict=True):
        np.testing.assert_array_equal(bits(got), bits(want))
    losses = general[1][batch:2 * batch] if at_state else general[1]
    assert losses[0] == np.inf and bits(losses[1:2]) == bits(np.array([-0.0]))

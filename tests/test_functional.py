"""The notebook's helpers: the same answers, on single values and batches."""
import numpy as np
import pytest

import gpunet
from helpers.arrays import host


def test_one_hot_encode(backend):
    np.testing.assert_array_equal(host(backend, gpunet.one_hot_encode(3, backend=backend)),
                                  [0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(host(backend, gpunet.one_hot_encode(2, num_labels=5, backend=backend)),
                                  [0, 0, 1, 0, 0])
    batch = gpunet.one_hot_encode([1, 0], 3, backend=backend)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(host(backend, batch), [[0, 1, 0], [1, 0, 0]])


def test_binary_encode(backend):
    expected = {0: [0] * 10, 1: [1] + [0] * 9, 10: [0, 1, 0, 1, 0, 0, 0, 0, 0, 0],
                101: [1, 0, 1, 0, 0, 1, 1, 0, 0, 0], 999: [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]}
    for n, bits in expected.items():
        np.testing.assert_array_equal(host(backend, gpunet.binary_encode(n, backend=backend)), bits)
    batch = gpunet.binary_encode(list(expected), backend=backend)
    np.testing.assert_array_equal(host(backend, batch), list(expected.values()))


def test_fizz_buzz_encode(backend):
    cases = {2: [1, 0, 0, 0], 6: [0, 1, 0, 0], 10: [0, 0, 1, 0], 30: [0, 0, 0, 1]}
    for n, code in cases.items():
        np.testing.assert_array_equal(host(backend, gpunet.fizz_buzz_encode(n, backend=backend)), code)
    np.testing.assert_array_equal(host(backend, gpunet.fizz_buzz_encode(range(1, 16), backend=backend)).argmax(1),
                                  [0, 0, 1, 0, 2, 1, 0, 0, 1, 2, 0, 1, 0, 0, 3])


def test_argmax(backend):
    assert gpunet.argmax([0, -1]) == 0
    assert gpunet.argmax([-1, 0]) == 1
    assert gpunet.argmax(backend.asarray([-1, 10, 5, 20, -3])) == 3
    np.testing.assert_array_equal(host(backend, gpunet.argmax(backend.asarray([[1, 3], [4, 2]]))), [1, 0])


def test_softmax_one_vector_and_large_values(backend):
    p = host(backend, gpunet.softmax(backend.asarray([1000.0, 1000.0, -1000.0])))
    np.testing.assert_allclose(p, [0.5, 0.5, 0.0])
    lp = host(backend, gpunet.log_softmax(backend.asarray([1000.0, 0.0], np.float64)))
    np.testing.assert_allclose(lp, [0.0, -1000.0])


@pytest.mark.parametrize("call, message", [
    (lambda: gpunet.one_hot_encode(10), "labels in 0..9; got 10"),
    (lambda: gpunet.one_hot_encode([1, -1], 3), "labels in 0..2; got -1"),
    (lambda: gpunet.one_hot_encode(1, 0), "num_labels must be positive"),
    (lambda: gpunet.binary_encode(1024), "0..1023 in 10 bits; got 1024"),
    (lambda: gpunet.binary_encode(-3), "got -3"),
    (lambda: gpunet.binary_encode(2.5), "expects integers, got float64"),
    (lambda: gpunet.fizz_buzz_encode("7"), "expects integers"),
    (lambda: gpunet.argmax([]), r"non-empty vector or batch, got shape \(0,\)"),
])
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()

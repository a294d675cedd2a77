"""Softmax and its cross-entropy over arbitrary rows (hypothesis draws them)."""
import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="hypothesis is not installed (pip install -e '.[test]')")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

import gpunet  # noqa: E402

finite_rows = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 8)),
                     elements=st.floats(-1e4, 1e4))


@settings(max_examples=200, deadline=None)
@given(finite_rows)
def test_softmax_rows_are_distributions(x):
    p = gpunet.softmax(x)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)


@settings(max_examples=200, deadline=None)
@given(finite_rows, st.floats(-1e3, 1e3))
def test_softmax_is_invariant_to_a_constant_per_row(x, c):
    shift = c * np.arange(1, len(x) + 1)[:, None]
    np.testing.assert_allclose(gpunet.softmax(x + shift), gpunet.softmax(x), atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(finite_rows, st.data())
def test_softmax_cross_entropy_is_finite(x, data):
    labels = np.eye(x.shape[1])[data.draw(arrays(np.int64, len(x), elements=st.integers(0, x.shape[1] - 1)))]
    for dtype in [np.float32, np.float64]:
        loss, grad = gpunet.SoftmaxCrossEntropy().loss_and_gradient(x.astype(dtype), labels)
        assert np.isfinite(loss) and loss >= 0 and np.all(np.isfinite(grad))

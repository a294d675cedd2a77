"""Losses: the notebook's values, batch conventions, stability, softmax properties."""
import numpy as np
import pytest

import gpunet
from helpers.arrays import host

LOSSES = [gpunet.SSE, gpunet.SoftmaxCrossEntropy]


def test_sse_matches_the_notebook(backend):
    sse = gpunet.SSE()
    p, a = backend.asarray([1, 2, 3]), backend.asarray([10, 20, 30])
    assert float(sse.loss(p, a)) == 9 ** 2 + 18 ** 2 + 27 ** 2
    np.testing.assert_array_equal(host(backend, sse.gradient(p, a)), [-18, -36, -54])


def test_softmax_cross_entropy_values(backend):
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    labels = np.array([[0, 1, 0], [1, 0, 0]], dtype=float)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    ce = gpunet.SoftmaxCrossEntropy()
    x, y = backend.asarray(logits, np.float64), backend.asarray(labels, np.float64)
    assert float(ce.loss(x, y)) == pytest.approx(-(labels * log_p).sum() / 2, rel=1e-12)
    np.testing.assert_allclose(host(backend, ce.gradient(x, y)), (p - labels) / 2, rtol=1e-12)


@pytest.mark.parametrize("loss_class", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_batch_is_the_mean_or_sum_of_samples(backend, loss_class, reduction):
    """The batch's loss and gradient equal the per-sample ones, averaged or added."""
    rng = np.random.default_rng(0)
    predicted = rng.standard_normal((6, 4))
    actual = np.eye(4)[rng.integers(0, 4, 6)]
    loss = loss_class(reduction)
    per_loss = [float(loss.loss(backend.asarray(p, np.float64), backend.asarray(a, np.float64)))
                for p, a in zip(predicted, actual)]
    per_grad = [host(backend, loss.gradient(backend.asarray(p, np.float64),
                                            backend.asarray(a, np.float64)))
                for p, a in zip(predicted, actual)]
    divisor = len(predicted) if reduction == "mean" else 1
    batch = backend.asarray(predicted, np.float64), backend.asarray(actual, np.float64)
    assert float(loss.loss(*batch)) == pytest.approx(sum(per_loss) / divisor, rel=1e-12)
    np.testing.assert_allclose(host(backend, loss.gradient(*batch)),
                               np.array(per_grad) / divisor, rtol=1e-12)
    combined = loss.loss_and_gradient(*batch)
    assert float(combined[0]) == pytest.approx(float(loss.loss(*batch)), rel=1e-12)
    np.testing.assert_allclose(host(backend, combined[1]), host(backend, loss.gradient(*batch)),
                               rtol=1e-12)


LN2 = np.log(2.0)
# Hand-computed cases: (predicted, actual, each row's loss, each row's gradient of its own loss).
EXACT = {
    gpunet.SSE: ([[1, 2, 3], [0, 0, 0]], [[10, 20, 30], [1, 0, 0]],
                 # 9^2 + 18^2 + 27^2 and 1^2; 2 (p - a)
                 [1134.0, 1.0], [[-18, -36, -54], [-2, 0, 0]]),
    gpunet.SoftmaxCrossEntropy: (
        # e^z = 1, 2, 5 (softmax 1/8, 1/4, 5/8) and 3, 3, 2 (softmax 3/8, 3/8, 1/4)
        np.log([[1, 2, 5], [3, 3, 2]]), [[1, 0, 0], [0, 0, 1]],
        [3 * LN2, 2 * LN2], [[1 / 8 - 1, 1 / 4, 5 / 8], [3 / 8, 3 / 8, 1 / 4 - 1]]),
}


@pytest.mark.parametrize("loss_class", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_and_gradient_exact_values(backend, loss_class, reduction):
    """loss_and_gradient, loss, gradient and sample_losses_and_gradient against
    values worked out by hand: a batch's loss is the mean (or sum) of its rows'
    losses and its gradient each row's gradient divided by the batch size (or
    not); one sample is its own loss and gradient under either reduction."""
    predicted, actual, row_losses, row_grads = EXACT[loss_class]
    loss = loss_class(reduction)
    p, a = backend.asarray(predicted, np.float64), backend.asarray(actual, np.float64)
    divisor = 2 if reduction == "mean" else 1
    value, grad = loss.loss_and_gradient(p, a)
    assert value.shape == () and float(value) == pytest.approx(sum(row_losses) / divisor, rel=1e-12)
    np.testing.assert_allclose(host(backend, grad), np.array(row_grads) / divisor, rtol=1e-12)
    assert float(loss.loss(p, a)) == pytest.approx(sum(row_losses) / divisor, rel=1e-12)
    np.testing.assert_allclose(host(backend, loss.gradient(p, a)), np.array(row_grads) / divisor,
                               rtol=1e-12)
    losses, grad = loss.sample_losses_and_gradient(p, a)
    np.testing.assert_allclose(host(backend, losses), row_losses, rtol=1e-12)
    np.testing.assert_allclose(host(backend, grad), np.array(row_grads) / divisor, rtol=1e-12)
    for row in range(2):
        value, grad = loss.loss_and_gradient(p[row], a[row])
        assert value.shape == () and float(value) == pytest.approx(row_losses[row], rel=1e-12)
        np.testing.assert_allclose(host(backend, grad), row_grads[row], rtol=1e-12)
        one_row = loss.loss_and_gradient(p[row:row + 1], a[row:row + 1])
        assert float(one_row[0]) == pytest.approx(row_losses[row], rel=1e-12)
        np.testing.assert_allclose(host(backend, one_row[1]), [row_grads[row]], rtol=1e-12)


@pytest.mark.parametrize("loss_class", LOSSES)
def test_sample_losses_are_each_samples_loss(backend, loss_class):
    """What training records: one loss per row, each the loss of that row alone,
    with the gradient of the batch's mean."""
    rng = np.random.default_rng(1)
    predicted = backend.asarray(rng.standard_normal((5, 3)), np.float64)
    actual = backend.asarray(np.eye(3)[rng.integers(0, 3, 5)], np.float64)
    loss = loss_class()
    losses, grad = loss.sample_losses_and_gradient(predicted, actual)
    assert losses.shape == (5,)
    np.testing.assert_allclose(host(backend, losses),
                               [float(loss.loss(p, a)) for p, a in zip(predicted, actual)],
                               rtol=1e-12)
    np.testing.assert_allclose(host(backend, grad), host(backend, loss.gradient(predicted, actual)))
    one, _ = loss.sample_losses_and_gradient(predicted[0], actual[0])
    assert one.shape == () and float(one) == pytest.approx(float(losses[0]), rel=1e-12)


def test_softmax_cross_entropy_needs_a_class(backend):
    with pytest.raises(ValueError, match=r"k >= 1, got shapes \(2, 0\)"):
        gpunet.SoftmaxCrossEntropy().loss(backend.xp.zeros((2, 0)), backend.xp.zeros((2, 0)))


def test_batch_of_one_equals_one_sample(backend):
    for loss in [gpunet.SSE(), gpunet.SoftmaxCrossEntropy()]:
        one = float(loss.loss([0.2, -1.0, 3.0], [0.0, 0.0, 1.0]))
        assert float(loss.loss([[0.2, -1.0, 3.0]], [[0.0, 0.0, 1.0]])) == pytest.approx(one)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_finite_for_huge_logits(backend, dtype):
    ce = gpunet.SoftmaxCrossEntropy()
    logits = backend.asarray([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
    labels = backend.asarray(np.eye(3), dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = float(ce.loss(logits, labels))
        grad = host(backend, ce.gradient(logits, labels))
    # row 0 is right (loss 0); row 1 is uniform (log 3); row 2 puts the label's logit 2e4 below
    assert value == pytest.approx((0 + np.log(3) + (2e4 + np.log(2))) / 3, rel=1e-5)
    assert np.all(np.isfinite(grad)) and grad.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_of_logits_too_far_apart_to_subtract(backend, dtype):
    """Finite logits whose difference overflows to -inf: a class of target weight 0
    adds nothing (no 0 * -inf = NaN); on the target's class the loss is inf. The
    overflow is expected, so it neither raises nor warns."""
    big = 0.9 * np.finfo(dtype).max
    z = backend.asarray([[big, -big, 0.0], [big, -big, 0.0]], dtype)
    a = backend.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        losses, grad = backend.softmax_cross_entropy(z, a, 1.0)
    np.testing.assert_array_equal(host(backend, losses), [0.0, np.inf])
    np.testing.assert_array_equal(host(backend, grad), [[0, 0, 0], [1, -1, 0]])


def test_losses_keep_float32(backend):
    for loss in [gpunet.SSE(), gpunet.SoftmaxCrossEntropy()]:
        p = backend.asarray(np.ones((2, 3), np.float32))
        a = backend.asarray(np.eye(3)[:2], np.float64)
        assert loss.loss(p, a).dtype == loss.gradient(p, a).dtype == np.float32


@pytest.mark.parametrize("loss_class", LOSSES)
def test_shape_mismatch_names_both_shapes(loss_class):
    loss = loss_class()
    with pytest.raises(ValueError, match=rf"^{loss_class.__name__}: predicted shape \(2, 3\) "
                                         r"does not match actual shape \(2, 4\)$"):
        loss.loss(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"predicted shape \(3,\) does not match actual shape \(2,\)"):
        loss.gradient([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=rf"^{loss_class.__name__}: expected one sample \(D,\) "
                                         r"or a batch \(N, D\), got shape \(2, 2, 2\)$"):
        loss.loss(np.ones((2, 2, 2)), np.ones((2, 2, 2)))


def test_reprs():
    assert repr(gpunet.SSE()) == "SSE(reduction='mean')"
    assert repr(gpunet.SoftmaxCrossEntropy("sum")) == "SoftmaxCrossEntropy(reduction='sum')"


def test_unknown_reduction():
    with pytest.raises(ValueError, match="'avg'.*mean, sum"):
        gpunet.SSE("avg")


@pytest.mark.parametrize("loss_class", LOSSES)
def test_an_empty_batch_has_no_loss_and_an_empty_gradient(backend, loss_class):
    losses, gradient = loss_class().sample_losses_and_gradient(
        backend.asarray(np.zeros((0, 3))), backend.asarray(np.zeros((0, 3))))
    assert losses.shape == (0,) and gradient.shape == (0, 3)
    assert float(loss_class().loss(backend.asarray(np.zeros((0, 3))),
                                   backend.asarray(np.zeros((0, 3))))) == 0.0


@pytest.mark.parametrize("loss_class", LOSSES)
def test_a_loss_computes_where_its_inputs_live(numpy_backend, monkeypatch, loss_class):
    """On the predictions' backend, not the default one (here one that cannot run)."""
    monkeypatch.setenv("GPUNET_BACKEND", "cupy")
    p = numpy_backend.asarray([[1.0, 2.0, 3.0]])
    losses, gradient = loss_class().sample_losses_and_gradient(p, np.float32([[0, 0, 1]]))
    assert isinstance(losses, np.ndarray) and isinstance(gradient, np.ndarray)

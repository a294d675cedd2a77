"""Losses: how wrong a prediction is, and the gradient of that.

As in the notebook, the loss of one sample sums over its outputs. Over a
batch (N, D), ``reduction='mean'`` (the default) averages the per-sample
losses, so the learning rate does not depend on the batch size, and
``reduction='sum'`` adds them up; for one sample, or a batch of one, both
equal the notebook's numbers. ``loss`` returns a 0-d array that stays on the
device (``float()`` it to read it).
"""
from __future__ import annotations

from typing import Any

from .backend import Array, Backend, backend_of
from .functional import exp_shifted, log_softmax

REDUCTIONS = ("mean", "sum")


class Loss:
    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; valid reductions: "
                             f"{', '.join(REDUCTIONS)}")
        self.reduction = reduction

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"

    def loss(self, predicted: Any, actual: Any) -> Array:
        """How good are the predictions? (Larger is worse.)"""
        raise NotImplementedError

    def gradient(self, predicted: Any, actual: Any) -> Array:
        """dL/d(predicted), the same shape as ``predicted``."""
        raise NotImplementedError

    def sample_sum(self, batch_loss: Array, batch_size: int) -> Array:
        """The batch's loss summed over its samples, from what ``loss`` returned."""
        return batch_loss * batch_size if self.reduction == "mean" else batch_loss

    def loss_and_gradient(self, predicted: Any, actual: Any) -> tuple[Array, Array]:
        """``(loss, gradient)`` at once; a loss may share work between the two."""
        return self.loss(predicted, actual), self.gradient(predicted, actual)

    def _prepare(self, predicted: Any, actual: Any) -> tuple[Backend, Array, Array, float]:
        """Both as arrays of one backend and dtype, shapes checked, and the
        factor that turns a sum over the batch into the reduction."""
        backend = backend_of(predicted)
        p = backend.asarray(predicted)
        a = backend.asarray(actual, p.dtype)
        if p.shape != a.shape:
            raise ValueError(f"{type(self).__name__}: predicted shape {p.shape} does not match "
                             f"actual shape {a.shape}")
        if p.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__}: expected one sample (D,) or a batch "
                             f"(N, D), got shape {p.shape}")
        scale = 1 / p.shape[0] if self.reduction == "mean" and p.ndim == 2 and p.shape[0] else 1.0
        return backend, p, a, scale


class SSE(Loss):
    """Sum of squared errors: L = sum (p - a)^2, dL/dp = 2 (p - a)."""

    def loss(self, predicted: Any, actual: Any) -> Array:
        _, p, a, scale = self._prepare(predicted, actual)
        d = p - a
        return (d * d).sum() * scale

    def gradient(self, predicted: Any, actual: Any) -> Array:
        _, p, a, scale = self._prepare(predicted, actual)
        return (p - a) * (2 * scale)


class SoftmaxCrossEntropy(Loss):
    """Negative log-likelihood of ``actual`` under softmax(predicted):
    L = -sum a log softmax(p), computed with log-sum-exp so it stays finite
    for any finite logits (the notebook's log(softmax + 1e-30) caps at about 69);
    dL/dp = softmax(p) - a, exact when each row of ``actual`` sums to 1
    (one-hot labels or probabilities)."""

    def loss(self, predicted: Any, actual: Any) -> Array:
        _, p, a, scale = self._prepare(predicted, actual)
        return -(a * log_softmax(p)).sum() * scale

    def gradient(self, predicted: Any, actual: Any) -> Array:
        backend, p, a, scale = self._prepare(predicted, actual)
        _, e, total = exp_shifted(p)
        return backend.softmax_ce_grad(e, total, a, scale)

    def loss_and_gradient(self, predicted: Any, actual: Any) -> tuple[Array, Array]:
        """One exponential serves both."""
        backend, p, a, scale = self._prepare(predicted, actual)
        shifted, e, total = exp_shifted(p)
        loss = -(a * (shifted - backend.xp.log(total))).sum() * scale
        return loss, backend.softmax_ce_grad(e, total, a, scale)

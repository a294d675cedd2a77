"""Losses: how wrong a prediction is, and the gradient of that.

As in the notebook, the loss of one sample sums over its outputs. Over a
batch (N, D), ``reduction='mean'`` (the default) averages the per-sample
losses, so the learning rate does not depend on the batch size, and
``reduction='sum'`` adds them up; for one sample, or a batch of one, both
equal the notebook's numbers. ``loss`` returns a 0-d array that stays on the
device (``float()`` it to read it); the training loop takes each sample's
loss with the gradient, from ``sample_losses_and_gradient``.
"""
from __future__ import annotations

from typing import Any

from .backend import Array, Backend, backend_of
from .backend.base import FLOAT_DTYPES

REDUCTIONS = ("mean", "sum")


class Loss:
    """A loss over one sample (D,) or a batch (N, D). Subclasses give each
    sample's loss and the gradient in ``_sample_losses_and_gradient``; the
    notebook's ``loss`` and ``gradient`` and the training loop derive from it."""

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; valid reductions: "
                             f"{', '.join(REDUCTIONS)}")
        self.reduction = reduction

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"

    def loss(self, predicted: Any, actual: Any) -> Array:
        """How good are the predictions? (Larger is worse.)"""
        return self.loss_and_gradient(predicted, actual)[0]

    def gradient(self, predicted: Any, actual: Any) -> Array:
        """dL/d(predicted), the same shape as ``predicted``."""
        return self.sample_losses_and_gradient(predicted, actual)[1]

    def loss_and_gradient(self, predicted: Any, actual: Any) -> tuple[Array, Array]:
        """``(loss, gradient)`` at once."""
        losses, gradient = self.sample_losses_and_gradient(predicted, actual)
        total = losses.sum()
        return (total * (1 / losses.size) if self.reduction == "mean" and losses.size > 1
                else total), gradient

    def sample_losses_and_gradient(self, predicted: Any, actual: Any,
                                   scale: float | None = None) -> tuple[Array, Array]:
        """The loss of each sample (shape (N,), or () for one sample) and, in the
        same pass, the gradient of their sum times ``scale``: by default the
        reduced loss's (``batch_scale(N)``: 1/N for the mean of a batch, 1 for
        one sample). Data-parallel training gives a rank's share of a batch of
        B rows the whole batch's ``batch_scale(B)``."""
        backend = backend_of(predicted)
        p, a = predicted, actual  # each as backend.asarray would return it
        if type(p) is not backend.array_type or p.dtype not in FLOAT_DTYPES:
            p = backend.asarray(p)
        if type(a) is not backend.array_type or a.dtype != p.dtype:
            a = backend.asarray(a, p.dtype)
        if p.shape != a.shape:
            raise ValueError(f"{type(self).__name__}: predicted shape {p.shape} does not match "
                             f"actual shape {a.shape}")
        if p.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__}: expected one sample (D,) or a batch "
                             f"(N, D), got shape {p.shape}")
        if scale is None:
            scale = self.batch_scale(p.shape[0]) if p.ndim == 2 else 1.0
        return self._sample_losses_and_gradient(backend, p, a, scale)

    def batch_scale(self, rows: int) -> float:
        """The gradient's factor for a batch of ``rows`` samples: 1/rows for the mean."""
        return 1 / rows if self.reduction == "mean" and rows else 1.0

    def _sample_losses_and_gradient(self, backend: Backend, p: Array, a: Array,
                                    scale: float) -> tuple[Array, Array]:
        """Per-sample losses, and the gradient of their sum times ``scale``."""
        raise NotImplementedError


class SSE(Loss):
    """Sum of squared errors: L = sum (p - a)^2, dL/dp = 2 (p - a)."""

    def _sample_losses_and_gradient(self, backend: Backend, p: Array, a: Array,
                                    scale: float) -> tuple[Array, Array]:
        d = p - a
        losses = (d * d).sum(axis=-1)
        d *= 2 * scale
        return losses, d


class SoftmaxCrossEntropy(Loss):
    """Negative log-likelihood of ``actual`` under softmax(predicted):
    L = -sum a log softmax(p), computed with log-sum-exp so it stays finite
    for any finite logits (the notebook's log(softmax + 1e-30) caps at about 69);
    dL/dp = softmax(p) - a, exact when each row of ``actual`` sums to 1
    (one-hot labels or probabilities). Both come from one backend operation
    (one kernel on a GPU)."""

    def _sample_losses_and_gradient(self, backend: Backend, p: Array, a: Array,
                                    scale: float) -> tuple[Array, Array]:
        return backend.softmax_cross_entropy(p, a, scale)

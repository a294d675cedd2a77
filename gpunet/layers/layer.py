"""The Layer abstraction: forward computes, backward propagates gradients."""
from __future__ import annotations

from typing import Any, Sequence

from ..backend import Array


class Layer:
    """A step of computation with a gradient.

    ``forward(input)`` takes a batch of shape (N, D) or one sample (D,) (a
    Python list too) and returns an array of the same rank. ``backward(gradient)``
    takes dL/d(output) for the last forward and returns dL/d(input), storing
    dL/d(param) for each array of ``params()`` in ``grads()``, in the same order.
    """

    # Whether the output always has the input's width (elementwise layers).
    keeps_width: bool = False

    def forward(self, input: Any) -> Array:
        raise NotImplementedError

    def backward(self, gradient: Any) -> Array:
        raise NotImplementedError

    def backward_to_params(self, gradient: Any) -> None:
        """``backward`` for a caller that needs only ``grads()``, not dL/d(input):
        a layer may skip computing the input gradient (a network's first Linear
        layer then saves its largest matrix product)."""
        self.backward(gradient)

    def widths(self) -> tuple[int | None, int | None]:
        """(input width, output width) of the rows it maps; None where unknown."""
        return None, None

    def params(self) -> Sequence[Array]:
        """The trainable arrays, updated in place by optimizers."""
        return ()

    def grads(self) -> Sequence[Array]:
        """The gradients from the last backward, one per entry of ``params()``."""
        return ()

    def adopt(self, params: Sequence[Array], grads: Sequence[Array]) -> None:
        """Keep parameters and gradients in the given arrays (views into a
        network's shared buffers), in ``params()`` order, values already copied."""
        if params or grads:
            raise NotImplementedError(f"{type(self).__name__} has parameters but no adopt()")

    def can_adopt(self) -> bool:
        """Whether ``adopt`` can take this layer's arrays: it has none, or it
        defines ``adopt``."""
        return not self.params() or type(self).adopt is not Layer.adopt

    def flat(self) -> tuple[Array, Array] | None:
        """One contiguous array holding every parameter and one holding every
        gradient, when this layer keeps them so; optimizers then update all of
        them at once. None otherwise."""
        return None

    def _not_saved(self) -> RuntimeError:
        """The error of a backward called before any forward (what it saves is None)."""
        return RuntimeError(f"{type(self).__name__}.backward called before forward: "
                            "there is no saved forward pass to differentiate")


def check_same_shape(gradient: Array, output: Array, layer: Layer) -> None:
    """A gradient must have the shape of the output it belongs to."""
    if gradient.shape != output.shape:
        raise ValueError(f"{type(layer).__name__}.backward: gradient shape {gradient.shape} "
                         f"does not match output shape {output.shape}")

"""The fused operations of a planned training step (``gpunet.planning``).

A dense stage is a Linear layer with the Dropout and activation after it; a
planned step computes its matrix products with ``gemm`` and the rest with one
operation each way, writing into buffers allocated once per batch shape. On
the CPU each is the eager layers' NumPy calls in the same order, so a planned
step gives bitwise the eager step's numbers; a device backend overrides each
with one kernel.
"""
from __future__ import annotations

from typing import Any, Callable

Array = Any


class FusedOperations:
    """Mixed into ``Backend``: written once against ``self.xp`` and its operations."""

    xp: Any
    uniform: Callable[..., Array]
    keep_mask: Callable[[Array, float, float], Array]

    def gemm(self, a: Array, b: Array, out: Array | None = None, *, trans_a: bool = False,
             trans_b: bool = False) -> Array:
        """op(a) op(b) of two matrices, into ``out`` if given; op(m) = m^T where
        its flag is set. A product over one row (a^T b for one-row a and b) is an
        outer product, 3x faster than a GEMM."""
        a = a.T if trans_a else a
        b = b.T if trans_b else b
        if a.shape[1] == 1:
            return self.xp.multiply(a, b, out=out)
        return self.xp.matmul(a, b, out=out)

    def dense_forward(self, z: Array, bias: Array, y: Array, *, activation: str | None = None,
                      dropout: tuple[float, float] | None = None,
                      mask: Array | None = None) -> Array:
        """A dense stage after its product z = x W^T: y = activation((z + bias)
        times, with ``dropout`` = (p, scale), a mask drawn into ``mask`` as
        ``dropout`` draws it). ``y`` may be ``z``; if not, z is left unspecified.
        Returns ``y``."""
        z += bias
        if dropout is not None:
            p, scale = dropout
            z *= self.keep_mask(self.uniform(z.shape, z.dtype, out=mask), p, scale)
        if activation is None:
            if y is not z:
                y[...] = z
            return y
        return getattr(self, activation)(z, out=y)

    def dense_backward(self, y: Array | None, gy: Array, dz: Array | None, db: Array, *,
                       activation: str | None = None, mask: Array | None = None) -> Array:
        """The gradient at a dense stage's product, dz = f'(y) gy (times ``mask``
        with dropout), into ``dz``, and its column sums, the bias gradient, into
        ``db``. Returns dz: ``gy`` itself when there is neither."""
        if activation is not None:
            gy = getattr(self, activation + "_grad")(y, gy, out=dz)
        if mask is not None:
            gy = self.xp.multiply(gy, mask, out=dz)
        gy.sum(axis=0, out=db)
        return gy

    def dense_softmax_cross_entropy(self, z: Array, bias: Array, a: Array, scale: float,
                                    gradient: Array, losses: Array, hits: Array) -> None:
        """The output stage: logits z + bias (z is left unspecified), each row's
        softmax cross-entropy against ``a`` into ``losses``, whether its largest
        logit is at the target's into ``hits``, and the gradient into ``gradient``,
        as ``softmax_cross_entropy`` and ``matches`` compute them."""
        xp = self.xp
        z += bias
        xp.equal(z.argmax(axis=-1), a.argmax(axis=-1), out=hits)
        xp.subtract(z, z.max(axis=-1, keepdims=True), out=z)
        xp.exp(z, out=gradient)
        total = gradient.sum(axis=-1, keepdims=True)
        z -= xp.log(total)
        weighted = a != 0
        xp.multiply(z, a, out=z, where=weighted)
        z.sum(axis=-1, where=weighted, dtype=z.dtype, out=losses)
        xp.negative(losses, out=losses)
        gradient /= total
        gradient -= a
        if scale != 1:
            gradient *= scale

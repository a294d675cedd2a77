"""The operations of a planned training step (``gpunet.planning``), but its products.

A dense stage is a Linear layer with the Dropout and activation after it; a
planned step computes its matrix products with ``gemm`` (``products.py``) and
the rest with one operation each way, writing into buffers allocated once per
batch shape. On the CPU each is the eager layers' NumPy calls in the same
order, so a planned step gives bitwise the eager step's numbers; a device
backend overrides each with one kernel. A graph step (``graph_step.py``)
passes its state, from which a stage's dropout reads its first counter.
"""
from __future__ import annotations

from typing import Any, Callable

from .activations import ActivationCall, activation_call
from .draw_window import DrawWindow
from .graph_step import COUNTER, KEY, OFFSET

Array = Any


class PlannedStepOperations:
    """Mixed into ``Backend``: written once against ``self.xp`` and its operations."""

    xp: Any
    uniform: Callable[..., Array]
    keep_mask: Callable[[Array, float, float], Array]
    activate: Callable[..., Array]
    activate_grad: Callable[..., Array]
    _uniform24: Callable[..., Array]
    _draws: Callable[[int, int], Array]
    key: int

    def dense_forward(self, z: Array, bias: Array, y: Array, *,
                      activation: str | ActivationCall | None = None,
                      dropout: tuple[float, float] | None = None,
                      mask: Array | None = None,
                      state: tuple[Array, int] | None = None,
                      window: DrawWindow | None = None) -> Array:
        """A dense stage after its product z = x W^T: y = activation((z + bias)
        times, with ``dropout`` = (p, scale), a mask drawn into ``mask`` as
        ``dropout`` draws it, ``window`` too). ``activation`` is a name in ACTIVATIONS (its
        parameters their defaults) or an ActivationCall. ``y`` may be ``z``; if
        not, z is left unspecified. With ``state`` = (a graph step's state,
        skip) the draws start at counter state[COUNTER] + skip with key
        state[KEY], read when the operation runs, and this backend's own
        counters are left alone (the mask is then required). Returns ``y``."""
        z += bias
        if dropout is not None:
            p, scale = dropout
            if state is None:
                draws = self.uniform(z.shape, z.dtype, out=mask, window=window)
            else:
                values, skip = state
                key, first = int(values[KEY]), int(values[COUNTER]) + skip
                mask.reshape(-1)[...] = (self._draws(first, z.size) if key == self.key
                                         else self._uniform24(first, z.size, key=key))
                draws = mask
            z *= self.keep_mask(draws, p, scale)
        if activation is None:
            if y is not z:
                y[...] = z
            return y
        return self.activate(activation if type(activation) is not str
                             else activation_call(activation), z, y)

    def dense_backward(self, y: Array | None, gy: Array, dz: Array | None, db: Array, *,
                       activation: str | ActivationCall | None = None,
                       mask: Array | None = None) -> Array:
        """The gradient at a dense stage's product, dz = f'(y) gy (times ``mask``
        with dropout), into ``dz``, and its column sums, the bias gradient, into
        ``db``. Returns dz: ``gy`` itself when there is neither."""
        if activation is not None:
            gy = self.activate_grad(activation if type(activation) is not str
                                    else activation_call(activation), y, gy, dz)
        if mask is not None:
            gy = self.xp.multiply(gy, mask, out=dz)
        self.xp.add.reduce(gy, axis=0, out=db)  # gy.sum(axis=0), without its Python layer
        return gy

    def dense_softmax_cross_entropy(self, z: Array, bias: Array, a: Array, scale: float,
                                    gradient: Array, losses: Array, hits: Array, db: Array,
                                    state: Array | None = None) -> None:
        """The output stage: logits z + bias (z is left unspecified), each row's
        softmax cross-entropy against ``a`` into ``losses``, whether its largest
        logit is at the target's into ``hits``, the gradient into ``gradient``,
        as ``softmax_cross_entropy`` and ``matches`` compute them, and its
        column sums, the bias gradient, into ``db``. With a graph step's
        ``state``, ``a``, ``losses`` and ``hits`` are the epoch's, the batch's
        rows those from state[OFFSET]."""
        xp = self.xp
        if state is not None:
            rows = slice(int(state[OFFSET]), int(state[OFFSET]) + len(z))
            a, losses, hits = a[rows], losses[rows], hits[rows]
        z += bias
        # the reductions as ndarray.max and .sum make them, without their Python layer
        xp.equal(z.argmax(axis=-1), a.argmax(axis=-1), out=hits)
        xp.subtract(z, xp.maximum.reduce(z, axis=-1, keepdims=True), out=z)
        xp.exp(z, out=gradient)
        total = xp.add.reduce(gradient, axis=-1, keepdims=True)
        z -= xp.log(total)
        weighted = a != 0
        xp.multiply(z, a, out=z, where=weighted)
        xp.add.reduce(z, axis=-1, where=weighted, dtype=z.dtype, out=losses)
        xp.negative(losses, out=losses)
        gradient /= total
        gradient -= a
        if scale != 1:
            gradient *= scale
        xp.add.reduce(gradient, axis=0, out=db)

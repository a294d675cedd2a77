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

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .activations import ActivationCall, activation_call
from .draw_window import DrawWindow
from .graph_step import COUNTER, KEY, OFFSET

Array = Any


@dataclass(frozen=True)
class TargetClasses:
    """One-hot targets (N, k) as classes, for steps of ``batch`` rows: ``classes``
    (N,), the column of each row's 1, and ``picks``, that entry's index in
    the flattened (batch, k) logits of the row's batch, (r mod batch) k + class."""
    classes: Array
    picks: Array


class PlannedStepOperations:
    """Mixed into ``Backend``: written once against ``self.xp`` and its operations."""

    xp: Any
    take_draws: Callable[..., int]
    keep_mask: Callable[[Array, float, float, Array], Array]
    activate: Callable[..., Array]
    activate_grad: Callable[..., Array]
    _uniform24: Callable[..., Array]
    _draws: Callable[[int, int], Array]
    key: int

    gemm: Callable[..., Array]
    read_ahead: Callable[[Array, Array], None]  # GraphStepOperations'

    def gemm_dense_forward(self, h: Array, w: Array, z: Array, bias: Array, *,
                           activation: str | ActivationCall | None = None,
                           dropout: tuple[float, float] | None = None,
                           mask: Array | None = None,
                           state: tuple[Array, int] | None = None,
                           window: DrawWindow | None = None) -> Array:
        """A dense stage's forward into ``z``: its product z = h W^T (``h`` may
        be a graph step's StateRows), then ``dense_forward(z, bias, z, ...)``
        in place; one kernel where a device fuses the two. Returns ``z``."""
        self.gemm(h, w, out=z, trans_b=True)
        return self.dense_forward(z, bias, z, activation=activation, dropout=dropout,
                                  mask=mask, state=state, window=window)

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
                draws = self._draws(self.take_draws(z.shape, window), z.size)
            else:
                values, skip = state
                key, first = int(values[KEY]), int(values[COUNTER]) + skip
                draws = (self._draws(first, z.size) if key == self.key
                         else self._uniform24(first, z.size, key=key))
            z *= self.keep_mask(draws, p, scale, self.xp.empty_like(z) if mask is None else mask)
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

    def gemm_dense_backward(self, g: Array, w: Array, gy: Array, y: Array | None,
                            dz: Array | None, db: Array, *,
                            activation: str | ActivationCall | None = None,
                            mask: Array | None = None) -> Array:
        """The gradient passed down to a dense stage, gy = g W (``g`` the dz of
        the stage above, ``w`` its weights), then that stage's
        ``dense_backward(y, gy, dz, db, ...)``; one kernel and the column sums
        where a device fuses them. Returns the stage's dz."""
        self.gemm(g, w, out=gy)
        return self.dense_backward(y, gy, dz, db, activation=activation, mask=mask)

    def target_classes(self, a: Array, batch: int) -> TargetClasses | None:
        """The TargetClasses of targets ``a`` (N, k) for steps of ``batch`` rows
        when every row is one-hot (one entry 1, the others 0); None otherwise.
        Once an epoch: a few passes over ``a``, and a read of what they found."""
        xp = self.xp
        n, k = a.shape
        ones = xp.ones(k, a.dtype)  # row sums and classes by products: exact for 0s and 1s
        if (int(xp.count_nonzero(a)) != n or int(xp.count_nonzero(a == 1)) != n
                or not bool((a @ ones == 1).all())):
            return None
        classes = (a @ xp.arange(k, dtype=a.dtype)).astype(np.intp)
        return TargetClasses(classes, xp.arange(n) % batch * k + classes)

    def gemm_dense_softmax_cross_entropy(self, h: Array, w: Array, z: Array, bias: Array,
                                         a: Array, scale: float, gradient: Array,
                                         losses: Array, hits: Array, db: Array,
                                         state: Array | None = None,
                                         classes: TargetClasses | None = None) -> None:
        """The last stage's product z = h W^T, then the output stage
        ``dense_softmax_cross_entropy(z, bias, a, ...)``; one kernel where a
        device fuses the two."""
        self.gemm(h, w, out=z, trans_b=True)
        self.dense_softmax_cross_entropy(z, bias, a, scale, gradient, losses, hits, db, state,
                                         classes)

    def dense_passes(self, x: Array, forwards: list[tuple], output: tuple,
                     backwards: list[tuple], state: Array | None = None,
                     classes: TargetClasses | None = None,
                     window: DrawWindow | None = None) -> Array:
        """A step's dense stages forward from ``x``, its loss, and backward, but
        the weight gradients: each hidden stage's ``gemm_dense_forward``
        (``forwards``: (w, z, bias, activation, mask, skip, dropout) each, z its
        output, with ``state`` its dropout from the state ``skip`` counters on),
        the last stage's ``gemm_dense_softmax_cross_entropy`` (``output``: w, z,
        bias, a, scale, gradient, losses, hits, db), then, last first, each
        hidden stage's ``gemm_dense_backward`` (``backwards``: the weights of the
        stage above, y, gy, dz, db, activation, mask). Between the loss and the
        backwards, a graph step asks for its next rows (``read_ahead``). Returns
        the first stage's dz (the gradient, with no hidden stage). Where a
        device's stages past the first are narrow, those are one kernel, row by
        row."""
        h = x
        for forward in forwards:
            h = self.stage_forward(h, forward, state, window)
        self.gemm_dense_softmax_cross_entropy(h, *output, state, classes)
        self.read_ahead(x, output[3])
        dz = output[5]
        for w, y, gy, dz_down, db, activation, mask in backwards:
            dz = self.gemm_dense_backward(dz, w, gy, y, dz_down, db, activation=activation,
                                          mask=mask)
        return dz

    def stage_forward(self, h: Array, forward: tuple, state: Array | None,
                      window: DrawWindow | None) -> Array:
        """``gemm_dense_forward`` of a hidden stage of ``dense_passes``' forwards."""
        w, z, bias, activation, mask, skip, dropout = forward
        return self.gemm_dense_forward(h, w, z, bias, activation=activation, dropout=dropout,
                                       mask=mask, window=window,
                                       state=None if state is None or mask is None
                                       else (state, skip))

    def dense_softmax_cross_entropy(self, z: Array, bias: Array, a: Array, scale: float,
                                    gradient: Array, losses: Array, hits: Array, db: Array,
                                    state: Array | None = None,
                                    classes: TargetClasses | None = None) -> None:
        """The output stage: logits z + bias (z is left unspecified), each row's
        softmax cross-entropy against ``a`` into ``losses``, whether its largest
        logit is at the target's into ``hits``, the gradient into ``gradient``,
        as ``softmax_cross_entropy`` and ``matches`` compute them, and its
        column sums, the bias gradient, into ``db``. With a graph step's
        ``state``, ``a``, ``losses``, ``hits`` and ``classes`` are the epoch's,
        the batch's rows those from state[OFFSET]. With ``classes``, ``a``'s
        (``target_classes``), a row's loss reads its one term of weight 1 and
        its hit compares with its class: the same numbers, in fewer passes."""
        xp = self.xp
        labels, picks = (None, None) if classes is None else (classes.classes, classes.picks)
        if state is not None:
            first = int(state[OFFSET])
            rows = slice(first, first + len(z))
            a, losses, hits = a[rows], losses[rows], hits[rows]
            if classes is not None:
                labels, picks = labels[rows], picks[rows]
        z += bias
        # the reductions as ndarray.max and .sum make them, without their Python layer
        xp.equal(z.argmax(axis=-1), a.argmax(axis=-1) if labels is None else labels, out=hits)
        xp.subtract(z, xp.maximum.reduce(z, axis=-1, keepdims=True), out=z)
        xp.exp(z, out=gradient)
        total = xp.add.reduce(gradient, axis=-1, keepdims=True)
        z -= xp.log(total)
        if picks is None:
            weighted = a != 0
            xp.multiply(z, a, out=z, where=weighted)
            xp.add.reduce(z, axis=-1, where=weighted, dtype=z.dtype, out=losses)
            xp.negative(losses, out=losses)
        else:  # -(0 + 1 * z_c) = -z_c: z_c is never -0 (z - max z is -0 only below a +0 max)
            xp.negative(z.reshape(-1).take(picks), out=losses)
        gradient /= total
        gradient -= a
        if scale != 1:
            gradient *= scale
        xp.add.reduce(gradient, axis=0, out=db)

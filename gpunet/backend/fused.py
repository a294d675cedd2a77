"""The fused operations of a planned training step (``gpunet.planning``).

A dense stage is a Linear layer with the Dropout and activation after it; a
planned step computes its matrix products with ``gemm`` and the rest with one
operation each way, writing into buffers allocated once per batch shape. On
the CPU each is the eager layers' NumPy calls in the same order, so a planned
step gives bitwise the eager step's numbers; a device backend overrides each
with one kernel.

A graph step (``gpunet/planning/graph.py``) adds the operations whose per-step
values (the batch's first row, the first dropout counter) are read from a small
state array on the device, and ``capture``: on a device, a CUDA graph of the
step; here its stand-in, the step's operations recorded as it runs once and
called again, with the same arguments, at each replay.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

Array = Any
Replay = Callable[[], None]
# The backend operations a graph step calls: what the stand-in records.
STEP_OPERATIONS = ("gather_rows", "gemm", "dense_forward", "dense_softmax_cross_entropy",
                   "dense_backward", "sgd_update", "momentum_update", "place_step", "advance")


class GraphCaptureError(RuntimeError):
    """A step could not be captured as a graph; nothing of it ran."""


class FusedOperations:
    """Mixed into ``Backend``: written once against ``self.xp`` and its operations."""

    xp: Any
    uniform: Callable[..., Array]
    keep_mask: Callable[[Array, float, float], Array]
    _uniform24: Callable[[int, int], Array]
    # The matrix products a capture may use, tried in order; each names its path.
    GRAPH_GEMMS: tuple[str, ...] = ("stand-in",)

    def gemm(self, a: Array, b: Array, out: Array | None = None, *, trans_a: bool = False,
             trans_b: bool = False) -> Array:
        """op(a) op(b) of two matrices, into ``out`` if given; op(m) = m^T where
        its flag is set. A product over one row (a^T b for one-row a and b) is an
        outer product, 3x faster than a GEMM."""
        a = a.T if trans_a else a
        b = b.T if trans_b else b
        if a.shape[1] == 1:
            return self.xp.multiply(a, b, out=out)
        return self.matmul(a, b, out)

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        """a b of two matrices, into ``out`` if given: ``gemm``'s product."""
        return self.xp.matmul(a, b, out=out)

    def dense_forward(self, z: Array, bias: Array, y: Array, *, activation: str | None = None,
                      dropout: tuple[float, float] | None = None,
                      mask: Array | None = None,
                      state: tuple[Array, int] | None = None) -> Array:
        """A dense stage after its product z = x W^T: y = activation((z + bias)
        times, with ``dropout`` = (p, scale), a mask drawn into ``mask`` as
        ``dropout`` draws it). ``y`` may be ``z``; if not, z is left unspecified.
        With ``state`` = (a graph step's state, skip) the draws start at counter
        state[1] + skip, read when the operation runs, and this backend's own
        counters are left alone (the mask is then required). Returns ``y``."""
        z += bias
        if dropout is not None:
            p, scale = dropout
            if state is None:
                draws = self.uniform(z.shape, z.dtype, out=mask)
            else:
                mask.reshape(-1)[...] = self._uniform24(int(state[0][1]) + state[1], z.size)
                draws = mask
            z *= self.keep_mask(draws, p, scale)
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

    # -- a graph step: per-step values read from its state (offset, counter) ----
    def gather_rows(self, source: Array, order: Array, state: Array, out: Array) -> Array:
        """The rows order[offset:offset + len(out)] of ``source``, offset =
        state[0], into ``out``."""
        offset = int(state[0])
        return self.xp.take(source, order[offset:offset + len(out)], axis=0, out=out)

    def place_step(self, losses: Array, hits: Array, state: Array, all_losses: Array,
                   all_hits: Array) -> None:
        """A step's ``losses`` and ``hits`` into the epoch's, from offset state[0]."""
        rows = slice(int(state[0]), int(state[0]) + len(losses))
        all_losses[rows], all_hits[rows] = losses, hits

    def advance(self, state: Array, delta: Array) -> None:
        """The state of the next step: state += delta (rows, counters per step)."""
        self.xp.add(state, delta, out=state)

    def capture(self, record: Replay, gemm: str) -> Replay:
        """Run ``record()``, a step of backend operations, once and return what
        replays it; ``gemm`` is one of ``GRAPH_GEMMS``. The stand-in of a CUDA
        graph: the operations are recorded as they run and replayed with the
        same arguments, so a value the step took from the host stays fixed."""
        calls: list[tuple[Callable[..., Any], tuple, dict]] = []
        with _recording(self, calls):
            record()

        def replay() -> None:
            for operation, args, kwargs in calls:
                operation(*args, **kwargs)
        return replay


@contextlib.contextmanager
def _recording(backend: FusedOperations,
               calls: list[tuple[Callable[..., Any], tuple, dict]]) -> Iterator[None]:
    """While open, each of ``backend``'s STEP_OPERATIONS runs and appends
    (operation, args, kwargs) to ``calls``."""
    def recorded(operation: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((operation, args, kwargs))
            return operation(*args, **kwargs)
        return call

    for name in STEP_OPERATIONS:
        setattr(backend, name, recorded(getattr(backend, name)))
    try:
        yield
    finally:
        for name in STEP_OPERATIONS:
            delattr(backend, name)

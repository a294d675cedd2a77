"""The Backend: an array module ``xp`` plus the few operations that differ by device.

Everything here is written once against ``self.xp``, so the NumPy backend is
this class with ``xp = numpy``; a device backend overrides the operations it
can fuse into custom kernels and keeps the same contracts:

* every operation preserves the floating dtype of its inputs (float32 stays
  float32: constants are Python scalars, which never promote an array);
  inputs of two dtypes give NumPy's promotion of them, except where one
  input decides: the logits' dtype for a loss, the parameter's for an update;
* activation gradients are computed from the saved *output* ``y``, not the input;
* updates write into the given arrays in place.
"""
from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from threadpoolctl import threadpool_limits

from .. import seeding
from . import splitmix
from .activations import ACTIVATIONS, ActivationCall, ActivationsByName
from .draw_window import DrawWindow
from .graph_step import GraphStepOperations
from .planned_step import PlannedStepOperations
from .products import MatrixProducts
from .host_threads import threads_in_use

# SplitMix64's constants (splitmix.py, as kernels.py's dropout also takes them), as uint64.
GAMMA, MIX1, MIX2 = map(np.uint64, (splitmix.GAMMA, splitmix.MIX1, splitmix.MIX2))
U64 = {shift: np.uint64(shift) for shift in (27, 30, 31, 40)}  # typed, so no array promotes
UNIFORM_BLOCK = 1 << 16  # uniform draws computed at once for small requests

DEFAULT_DTYPE = np.dtype(np.float32)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

Array = Any  # an array of the backend's module (numpy.ndarray, cupy.ndarray)


class Backend(ActivationsByName, MatrixProducts, PlannedStepOperations, GraphStepOperations):
    """Array creation, transfer, randomness and elementwise kernels for one device;
    the matrix products (``products.py``), the operations of a planned step
    (``planned_step.py``) and of a graph step (``graph_step.py``)."""

    name: str
    xp: ModuleType
    array_type: type

    def __init__(self) -> None:
        seeding.on_seed(self.reseed)

    def __repr__(self) -> str:
        return f"<gpunet backend {self.name!r}>"

    # -- the host's threads ------------------------------------------------
    def use_threads(self, count: int) -> None:
        """Compute on the host with ``count`` threads: every BLAS and OpenMP pool's."""
        threadpool_limits(count)

    def threads_in_use(self) -> str:
        """How the host's threads are used, e.g. "BLAS 2 (openblas), OpenMP none"."""
        return threads_in_use()

    # -- creation and transfer -------------------------------------------
    def asarray(self, x: Any, dtype: Any = None) -> Array:
        """``x`` as an array on this device, of ``dtype`` if given; otherwise
        float32 and float64 arrays keep their dtype and anything else (lists,
        ints, bools, float16) becomes float32."""
        if dtype is None:
            dtype = getattr(x, "dtype", None)
            if dtype is None or dtype not in FLOAT_DTYPES:  # dtype(float64) == None holds
                dtype = DEFAULT_DTYPE
        if type(x) is self.array_type and x.dtype == dtype:
            return x
        return self.xp.asarray(x, dtype=np.dtype(dtype))

    def to_numpy(self, x: Array) -> np.ndarray:
        """A host NumPy copy (or view, on the CPU) of ``x``."""
        return np.asarray(x)

    def zeros_like(self, x: Array) -> Array:
        return self.xp.zeros_like(x)

    def empty(self, shape: int | tuple[int, ...], dtype: Any) -> Array:
        """An array of ``shape`` and ``dtype``, its values unset, for buffers a
        model or a step keeps: ``xp.empty``."""
        return self.xp.empty(shape, dtype)

    def synchronize(self) -> None:
        """Wait for queued device work to finish (a no-op on the CPU)."""

    def device_count(self) -> int:
        """How many devices of this kind the process sees (the host: 1)."""
        return 1

    def use_device(self, index: int) -> None:
        """Make device ``index`` the one new arrays and kernels go to."""

    # -- randomness: a counter-based generator, the same numbers on every device --
    def reseed(self) -> None:
        """Restart this device's random numbers from gpunet's seed (fresh entropy if unseeded)."""
        seed = seeding.stream_seed(seeding.DEVICE_STREAM)
        self.restart(seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0]))

    def restart(self, key: int, drawn: int = 0) -> None:
        """Continue the random stream of ``key`` from counter ``drawn``."""
        self.key, self.drawn = key, drawn
        self._block_first, self._block = drawn, None

    def take_counters(self, n: int) -> int:
        """Reserve the next ``n`` counters of this device's stream; returns the first."""
        first, self.drawn = self.drawn, self.drawn + n
        return first

    def take_draws(self, shape: tuple[int, ...], window: DrawWindow | None = None) -> int:
        """The first counter of a draw of ``shape``, element i taking counter
        first + i: the next prod(shape) counters; or, with ``window`` (these n
        rows are rows start .. start + n - 1 of a batch of ``window.rows`` shared
        among ranks), where they lie in the whole batch's draw, whose counters
        are all reserved: first = next + start * prod(shape[1:])."""
        if window is None:
            return self.take_counters(math.prod(shape))
        per_row = math.prod(shape[1:])
        return self.take_counters(window.rows * per_row) + window.start * per_row

    def random_bits(self, n: int) -> Array:
        """The next ``n`` random 64-bit integers (uint64)."""
        return self._bits(self.take_counters(n), n)

    def uniform(self, shape: tuple[int, ...], dtype: Any, out: Array | None = None,
                window: DrawWindow | None = None) -> Array:
        """The next uniform draws in [0, 1) (``take_draws``'s, ``window`` as
        there), as an array of ``shape`` (into ``out`` if given): the top 24 bits
        of each counter's random bits times 2^-24, so float32 and float64 draws
        are the same numbers. Small requests are served from a block computed
        ahead, in buffers kept for it (the values depend only on the counters)."""
        n = math.prod(shape)
        if window is None:  # take_draws(shape), inline: this is every dropout's path
            first = self.drawn
            self.drawn = first + n
        else:
            first = self.take_draws(shape, window)
        draws = self._draws(first, n)
        if out is None:
            return draws.astype(dtype).reshape(shape)
        out.reshape(n)[...] = draws
        return out

    def _draws(self, first: int, n: int) -> Array:
        """The uniform draws of counters first .. first + n - 1 (float32): a small
        request from the block computed ahead, which it computes anew where they
        do not lie in it; a large one computed alone."""
        if n > UNIFORM_BLOCK:
            return self._uniform24(first, n)
        offset = first - self._block_first
        if self._block is None or offset < 0 or offset + n > UNIFORM_BLOCK:
            self._block_first, offset = first, 0
            self._block = self._uniform24(first, UNIFORM_BLOCK, *self._block_buffers())
        return self._block[offset:offset + n]

    def _block_buffers(self) -> tuple[Array, Array, Array, Array]:
        """For the uniform block, made once: its float32 draws, two uint64 work
        arrays, and the counter offsets i * GAMMA."""
        if not hasattr(self, "_buffers"):
            xp = self.xp
            offsets = xp.arange(UNIFORM_BLOCK, dtype=np.uint64)
            offsets *= GAMMA
            self._buffers = (xp.empty(UNIFORM_BLOCK, np.float32), xp.empty_like(offsets),
                             xp.empty_like(offsets), offsets)
        return self._buffers

    def _bits(self, first: int, n: int, out: Array | None = None, work: Array | None = None,
              offsets: Array | None = None, key: int | None = None,
              top: bool = False) -> Array:
        """SplitMix64 of counters first .. first + n - 1, mix(key + c * GAMMA),
        computed as (key + first * GAMMA) + i * GAMMA modulo 2^64; into ``out``,
        with ``work`` and the ``offsets`` i * GAMMA, if given (uint64 arrays of n);
        ``key`` this backend's unless given. With ``top`` only the top 33 bits are
        SplitMix64's: the last round, z ^= z >> 31, which leaves them as they
        are, is skipped (two passes of nine)."""
        xp = self.xp
        if offsets is None:
            offsets = xp.arange(n, dtype=np.uint64)
            offsets *= GAMMA
            out = offsets if out is None else out
        key = self.key if key is None else key
        z = xp.add(offsets, np.uint64((key + first * int(GAMMA)) % 2 ** 64), out=out)
        work = xp.empty_like(z) if work is None else work
        for shift, mix in ((30, MIX1), (27, MIX2), (31, None))[:2 if top else 3]:
            z ^= xp.right_shift(z, U64[shift], out=work)
            if mix is not None:
                z *= mix
        return z

    def _uniform24(self, first: int, n: int, out: Array | None = None, bits: Array | None = None,
                   work: Array | None = None, offsets: Array | None = None,
                   key: int | None = None) -> Array:
        top = self.xp.right_shift(self._bits(first, n, bits, work, offsets, key, top=True),
                                  U64[40], out=work)
        return self.xp.multiply(top, 2.0 ** -24, out=out, dtype=np.float32)

    def permutation(self, n: int) -> Array:
        """A random permutation of ``range(n)``, drawn on this device."""
        return self.xp.argsort(self.random_bits(n), kind="stable")

    # -- activations: y = f(x), and dL/dx = f'(x) * gy computed from y ----------
    # Each writes into ``out`` when given, else a new array; an activation's ``out``
    # may be its input, a gradient's must be neither ``y`` nor ``gy``. Each is
    # also a method of its own name (``ActivationsByName``): backend.tanh(x).
    def activate(self, activation: ActivationCall, x: Array, out: Array | None = None) -> Array:
        """y = f(x), f the activation ``activation`` calls (activations.py)."""
        return ACTIVATIONS[activation.name].forward(self.xp, x, out, *activation.values)

    def activate_grad(self, activation: ActivationCall, y: Array, gy: Array,
                      out: Array | None = None) -> Array:
        """dL/dx = f'(x) gy, from f's output ``y`` and its gradient ``gy``, into
        ``out`` if given, else a new array of their promoted dtype."""
        if out is None:
            xp = self.xp
            out = xp.empty(y.shape, y.dtype if y.dtype == gy.dtype else xp.result_type(y, gy))
        return ACTIVATIONS[activation.name].gradient(self.xp, y, gy, out, *activation.values)

    # -- along rows: the last axis of (N, k) arrays, or of one (k,) row ---------
    def softmax_cross_entropy(self, z: Array, a: Array, scale: float) -> tuple[Array, Array]:
        """Softmax cross-entropy of logits ``z`` against targets ``a`` (same
        shape): each row's loss -sum_j a_j log softmax(z)_j, computed as
        -sum_j a_j (z_j - max z - log sum_i e^(z_i - max z)) over the j with
        a_j != 0 (so finite logits 6e38 apart give no 0 * -inf), and the gradient
        (softmax(z) - a) * scale, both in the dtype of ``z``, float32 or
        float64 (``a`` may be of any real or bool dtype). Returns ``(losses, gradient)``."""
        xp = self.xp
        if (z.dtype not in FLOAT_DTYPES or z.shape != a.shape or z.ndim not in (1, 2)
                or not z.shape[-1]):
            float_rows("softmax_cross_entropy", z, a)  # raises, naming the problem
        if a.dtype != z.dtype:
            a = a.astype(z.dtype)
        shifted = xp.subtract(z, xp.maximum.reduce(z, -1, keepdims=True))
        e = xp.exp(shifted)
        total = xp.add.reduce(e, -1, keepdims=True)
        shifted -= xp.log(total)
        weighted = a != 0
        xp.multiply(shifted, a, out=shifted, where=weighted)
        losses = -xp.add.reduce(shifted, -1, where=weighted)
        e /= total
        e -= a
        if scale != 1:
            e *= scale
        return losses, e

    def matches(self, p: Array, t: Array, out: Array | None = None) -> Array:
        """Whether each row of ``p`` has its largest entry where that row of
        ``t`` has (the first largest, as argmax): booleans, into ``out`` if given."""
        row_length("matches", p, t)
        return self.xp.equal(p.argmax(axis=-1), t.argmax(axis=-1), out=out)

    # -- dropout ------------------------------------------------------------
    def dropout(self, x: Array, p: float, scale: float,
                window: DrawWindow | None = None) -> tuple[Array, Array]:
        """Keep each element with probability 1 - p: returns ``(x * mask, mask)``,
        with ``mask`` holding ``scale`` where the element's ``uniform`` draw
        (``window`` as there) u >= p and 0 elsewhere (element i, in C order,
        takes the i-th draw)."""
        draws = self._draws(self.take_draws(x.shape, window), x.size)
        mask = self.keep_mask(draws, p, scale, self.xp.empty(x.shape, x.dtype))
        return x * mask, mask

    def keep_mask(self, draws: Array, p: float, scale: float, out: Array) -> Array:
        """``out`` (of ``draws``' size, float32 or float64) made ``scale`` where
        the uniform draw u >= p and 0 elsewhere, u compared in ``out``'s dtype
        (as ``uniform``'s draws of that dtype): one pass, no copy of the draws."""
        self.xp.greater_equal(draws, out.dtype.type(p), out=out.reshape(-1))
        if scale != 1:
            out *= scale
        return out

    # -- optimizer updates, in place -----------------------------------------
    # ``scratch``, from ``update_scratch``, holds the products, so nothing is allocated.
    def update_scratch(self, param: Array) -> Array | None:
        """A buffer the updates of ``param`` may use (None where they need none)."""
        return self.xp.empty_like(param)

    def sgd_update(self, param: Array, grad: Array, lr: float,
                   scratch: Array | None = None) -> None:
        """param -= lr * grad."""
        param -= self.xp.multiply(lr, grad, out=scratch)

    def momentum_update(self, param: Array, velocity: Array, grad: Array,
                        lr: float, momentum: float, scratch: Array | None = None) -> None:
        """velocity = momentum velocity + (1 - momentum) grad;  param -= lr velocity."""
        velocity *= momentum
        velocity += self.xp.multiply(1 - momentum, grad, out=scratch)
        param -= self.xp.multiply(lr, velocity, out=scratch)


def float_rows(operation: str, z: Array, a: Array) -> int:
    """``row_length`` of float32 or float64 ``z`` (TypeError otherwise) and ``a``."""
    if z.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{operation} needs float32 or float64 logits, got {z.dtype}")
    return row_length(operation, z, a)


def row_length(operation: str, first: Array, second: Array) -> int:
    """The length ``k`` of the rows ``operation`` pairs up: ValueError unless
    both arrays have one shape, one or two axes, and ``k`` >= 1."""
    if first.shape != second.shape or first.ndim not in (1, 2) or first.shape[-1] == 0:
        raise ValueError(f"{operation} needs two arrays of one shape (N, k) or (k,) with k >= 1, "
                         f"got shapes {first.shape} and {second.shape}")
    return first.shape[-1]

"""The CUDA kernels of the CuPy backend, as CuPy ElementwiseKernel specs.

``KERNELS`` maps each backend operation to the arguments of its kernel, the
CUDA operation text verbatim, so the sources can be checked without a device
(tests/backend/test_nvrtc.py compiles each with NVRTC); ``elementwise(name)`` builds
the CuPy kernel object, once. The activations and the dense-stage kernels of a
planned step are generated from the table of activations (``ACTIVATIONS`` of
activations.py), one kernel per activation and dropout or not
(``dense_kernel`` names them); an activation's parameters are ``T`` scalars.

Every kernel is generic over its type placeholders ``T`` (and ``U``), float32
or float64: constants are written ``T(1)`` and scalars arrive as ``T``
parameters, so no float32 value is ever promoted to double. CuPy binds a
placeholder to the dtype of the arrays given for it and refuses arrays of two
dtypes for one placeholder ("Type is mismatched": ``_decide_params_type_core``
in cupy/_core/_kernel.pyx), so the backend casts mixed inputs first; a
scalar takes its parameter's type. CuPy binds each
array parameter to the current element, broadcasting and following strides,
and an output parameter may be read as well as written, which makes the
updates in place. A ``raw`` parameter is the whole array instead, indexed in
C order whatever its strides: the row kernels run one thread per row ``i`` of
``k`` entries, for the reductions along a row that a loss and a match need.
Kernels that share memory within a block (sums over the rows, the fallback
product) are ``block_kernels/``'s.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .activations import ACTIVATIONS
from .graph_step import COUNTER, KEY, OFFSET, STATE_SIZE
from .splitmix import GAMMA, MIX1, MIX2

if TYPE_CHECKING:
    import cupy


@dataclass(frozen=True)
class KernelSpec:
    """The arguments of ``cupy.ElementwiseKernel``, as CuPy takes them."""

    name: str
    in_params: str
    out_params: str
    operation: str


IDENTITY = ("y = x", "gy")  # a dense stage without an activation
# The dense-stage kernels of a planned step: one per (activation or None, dropout or not).
DENSE_VARIANTS = [(activation, dropout) for activation in (None, *ACTIVATIONS)
                  for dropout in (False, True)]


def _activation_params(activation: str | None) -> str:
    """The kernel parameters of ``activation``'s scalars: ", T alpha", ... (or "")."""
    return "".join(f", T {name}" for name in ACTIVATIONS[activation].params) if activation else ""


def _formulas(activation: str | None) -> tuple[str, str]:
    """(statement setting y from x, expression of the gradient) of ``activation``."""
    if activation is None:
        return IDENTITY
    return ACTIVATIONS[activation].kernel_forward, ACTIVATIONS[activation].kernel_gradient


# Dropout that draws its own mask: element i takes counter first + i of the
# backend's SplitMix64 stream (splitmix.py; base.py's random_bits), its top 24
# bits as u in [0, 1), and is kept where u >= p; no draws are stored or read.
DRAW_PARAMS = "uint64 key, uint64 first, T p, T scale"
DRAW_MASK = (
    f"unsigned long long bits = key + (first + (unsigned long long)i) * {GAMMA:#x}ull;"
    f" bits = (bits ^ (bits >> 30)) * {MIX1:#x}ull;"
    f" bits = (bits ^ (bits >> 27)) * {MIX2:#x}ull; bits ^= bits >> 31;"
    " const T u = T(bits >> 40) * (T(1) / T(16777216)); mask = u >= p ? scale : T(0);")

# A graph step's state on the device (graph_step.py): a dense stage's draws
# take its key, state[KEY], from ``skip`` counters after the step's first, state[COUNTER].
STATE_DRAW_PARAMS = "raw uint64 state, uint64 skip, T p, T scale"
STATE_FIRST = (f"const unsigned long long key = state[{KEY}],"
               f" first = state[{COUNTER}] + skip;")
# A graph step's update (graph_step.py, update_and_advance): its rates read
# from the device, then, by thread 0 alone, the state moved on by ``delta``.
ADVANCE = f"if (i == 0) for (int s = 0; s < {STATE_SIZE}; ++s) state[s] += delta[s]"

Entry = Callable[[str], str]  # a row's entry at an index, as C: e.g. "p[row + {}]".format


def _first_largest(*entries: tuple[Entry, str, str], indices: bool = True) -> str:
    """One loop over a row's k entries that leaves, for each (entry, best,
    type_), ``best``_value (of ``type_``) its first largest entry, a NaN counting
    as largest (as NumPy's argmax), and with ``indices`` index ``best`` at it. The
    entry is kept, not read again at ``best``, so the loop's reads do not wait on
    one another; v == v is the not-NaN test, as CUDA's isnan has no integer
    overload."""
    index = "{0} = j; " if indices else ""
    declare = [(f"ptrdiff_t {best} = 0; " if indices else "")
               + f"{type_} {best}_value = {type_}(0);" for _, best, type_ in entries]
    bodies = [f"{{ const {type_} v = {entry('j')}; if (j == 0 || ({best}_value =="
              f" {best}_value && !(v <= {best}_value))) {{ {index.format(best)}{best}_value = v;"
              " } }" for entry, best, type_ in entries]
    return " ".join([*declare, "for (ptrdiff_t j = 0; j < k; ++j) {", *bodies, "}"])


def _softmax_cross_entropy(logit: Entry, hit: bool) -> str:
    """Softmax cross-entropy of row i of k ``logit`` entries against ``a``:
    loss = -sum a (z - max z - log total) and dL/dz = (e / total - a) * scale,
    with e = exp(z - max z) and total its sum; a term with a = 0 adds nothing,
    even where z - max z overflows to -inf. With ``hit``: whether the first
    largest logit is at the first largest target, as ``matches``."""
    return " ".join([
        "const ptrdiff_t row = (ptrdiff_t)i * k;",
        _first_largest((logit, "top", "T"), *([("a[row + {}]".format, "want", "T")] if hit
                                              else []), indices=hit),
        "const T largest = top_value; T total = T(0);",
        f"for (ptrdiff_t j = 0; j < k; ++j) {{ g[row + j] = exp({logit('j')} - largest);"
        " total += g[row + j]; }",
        "const T log_total = log(total); T sum = T(0);",
        "for (ptrdiff_t j = 0; j < k; ++j) {",
        f"if (a[row + j] != T(0)) sum += a[row + j] * ({logit('j')} - largest - log_total);",
        "g[row + j] = (g[row + j] / total - a[row + j]) * scale; }",
        "loss = -sum" + ("; hit = top == want" if hit else ""),
    ])


def dense_kernel(direction: str, activation: str | None, dropout: bool,
                 from_state: bool = False) -> str:
    """The name in ``KERNELS`` of a dense stage's ``direction`` ("forward" or
    "backward") kernel for ``activation`` (None: none), with dropout or not,
    its counter from a graph step's state or not."""
    return (f"dense_{direction}_{activation or 'identity'}" + ("_dropout" if dropout else "")
            + ("_from_state" if from_state else ""))


def _dense_forward(activation: str | None, dropout: bool,
                   from_state: bool = False) -> tuple[str, str, str, str]:
    """y = activation((z + bias) * mask), the mask drawn as ``dropout`` draws it
    (its first counter read from ``state`` with ``from_state``); each element's
    z is read before its y is written, so y may be z. The activation's
    parameters come last among the inputs."""
    forward, _ = _formulas(activation)
    draw = f"{STATE_FIRST} {DRAW_MASK}" if from_state else DRAW_MASK
    return (dense_kernel("forward", activation, dropout, from_state),
            "T z, T bias" + (f", {STATE_DRAW_PARAMS if from_state else DRAW_PARAMS}"
                             if dropout else "") + _activation_params(activation),
            "T y" + (", T mask" if dropout else ""),
            "T x = z + bias;" + (f" {draw} x *= mask;" if dropout else "") + f" {forward}")


def _specs(*rows: tuple[str, str, str, str]) -> dict[str, KernelSpec]:
    """{name: spec} from rows (name, in_params, out_params, operation); CUDA names get a prefix."""
    return {name: KernelSpec(f"gpunet_{name}", *rest) for name, *rest in rows}


KERNELS: dict[str, KernelSpec] = _specs(
    # Each activation (activations.py), its parameters after its inputs.
    *((name, "T x" + _activation_params(name), "T y", _formulas(name)[0])
      for name in ACTIVATIONS),
    *((f"{name}_grad", "T y, T gy" + _activation_params(name), "T gx",
       f"gx = {_formulas(name)[1]}") for name in ACTIVATIONS),
    # Row kernels: each thread i takes row i of k entries of its raw (N, k) arrays.
    ("softmax_cross_entropy", "raw T z, raw T a, int64 k, T scale", "T loss, raw T g",
     _softmax_cross_entropy("z[row + {}]".format, hit=False)),
    # Whether a row of p and a row of t have their largest entry at the same
    # index; T and U may be any real or bool type.
    ("matches", "raw T p, raw U t, int64 k", "bool hit",
     " ".join(["const ptrdiff_t row = (ptrdiff_t)i * k;",
               _first_largest(("p[row + {}]".format, "bp", "T"),
                              ("t[row + {}]".format, "bt", "U")),
               "hit = bp == bt"])),
    ("dropout", f"T x, {DRAW_PARAMS}", "T y, T mask", f"{DRAW_MASK} y = x * mask"),
    ("sgd_update", "T g, T lr", "T param", "param -= lr * g"),
    # The notebook's momentum; damping = 1 - momentum, rounded once on the host as NumPy does.
    ("momentum_update", "T g, T lr, T momentum, T damping", "T param, T velocity",
     "velocity = momentum * velocity + damping * g; param -= lr * velocity"),
    # A planned step's dense stages (planned_step.py): forward, elementwise
    # over (N, k) with bias (k,) broadcast (backward and the output stage are
    # block kernels: block_kernels/reductions.py).
    *(_dense_forward(activation, dropout) for activation, dropout in DENSE_VARIANTS),
    # A graph step (graph_step.py): its dropout stages drawing from the key
    # and counter in its state; its update with the rates on the device, which
    # advances the state.
    *(_dense_forward(activation, True, from_state=True) for activation in (None, *ACTIVATIONS)),
    # Its batch's inputs (StateRows): the rows of the epoch's (N, width) data from
    # row state[OFFSET], copied into a buffer for the products (cuBLAS takes host pointers).
    ("state_rows", "raw T data, raw uint64 state, int64 width", "T rows",
     f"rows = data[(ptrdiff_t)state[{OFFSET}] * width + i]"),
    ("sgd_update_and_advance", "T g, raw T rates, raw uint64 delta", "T param, raw uint64 state",
     f"param -= rates[0] * g; {ADVANCE}"),
    ("momentum_update_and_advance", "T g, raw T rates, raw uint64 delta",
     "T param, T velocity, raw uint64 state",
     f"velocity = rates[1] * velocity + rates[2] * g; param -= rates[0] * velocity; {ADVANCE}"),
)


def build(spec: KernelSpec) -> cupy.ElementwiseKernel:
    """A new ``cupy.ElementwiseKernel`` for ``spec`` (CuPy compiles it per dtype
    on its first call, and caches the binary by its source)."""
    import cupy

    return cupy.ElementwiseKernel(spec.in_params, spec.out_params, spec.operation, spec.name)


@functools.cache
def elementwise(name: str) -> cupy.ElementwiseKernel:
    """The kernel for ``KERNELS[name]``, built on first use and kept."""
    return build(KERNELS[name])

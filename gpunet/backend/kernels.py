"""The CUDA kernels of the CuPy backend, as CuPy ElementwiseKernel specs.

``KERNELS`` maps each backend operation to the arguments of its kernel, the
CUDA operation text verbatim, so the sources can be checked without a device
(tests/test_nvrtc.py compiles each with NVRTC); ``elementwise(name)`` builds
the CuPy kernel object, once.

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
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import cupy


@dataclass(frozen=True)
class KernelSpec:
    """The arguments of ``cupy.ElementwiseKernel``, as CuPy takes them."""

    name: str
    in_params: str
    out_params: str
    operation: str


def _specs(*rows: tuple[str, str, str, str]) -> dict[str, KernelSpec]:
    """{name: spec} from rows (name, in_params, out_params, operation); CUDA names get a prefix."""
    return {name: KernelSpec(f"gpunet_{name}", *rest) for name, *rest in rows}


KERNELS: dict[str, KernelSpec] = _specs(
    # 1 / (1 + e^-x) from e = e^-|x| <= 1, so nothing overflows for any x:
    # x >= 0 gives 1 / (1 + e), x < 0 gives e / (1 + e); a NaN stays NaN.
    ("sigmoid", "T x", "T y",
     "const T e = exp(-fabs(x)); y = (x >= T(0) ? T(1) : e) / (T(1) + e)"),
    ("sigmoid_grad", "T y, T gy", "T gx", "gx = gy * y * (T(1) - y)"),
    ("tanh", "T x", "T y", "y = tanh(x)"),
    ("tanh_grad", "T y, T gy", "T gx", "gx = gy * (T(1) - y * y)"),
    # max(x, 0) that keeps a NaN, as NumPy's maximum does.
    ("relu", "T x", "T y", "y = x < T(0) ? T(0) : x"),
    # gy * [y > 0] as NumPy computes it: a NaN or infinite gy still gives NaN where y <= 0.
    ("relu_grad", "T y, T gy", "T gx", "gx = gy * T(y > T(0))"),
    # Row kernels: each thread i takes row i of k entries of its raw (N, k) arrays.
    # Softmax cross-entropy of one row: loss = -sum a (z - max z - log total) and
    # dL/dz = (e / total - a) * scale, with e = exp(z - max z) and total its sum;
    # a term with a = 0 adds nothing, even where z - max z overflows to -inf.
    ("softmax_cross_entropy", "raw T z, raw T a, int64 k, T scale", "T loss, raw T g",
     "const ptrdiff_t row = (ptrdiff_t)i * k; T top = z[row];"
     " for (ptrdiff_t j = 1; j < k; ++j) top = z[row + j] > top ? z[row + j] : top;"
     " T total = T(0);"
     " for (ptrdiff_t j = 0; j < k; ++j) { g[row + j] = exp(z[row + j] - top); total += g[row + j]; }"
     " const T log_total = log(total); T sum = T(0);"
     " for (ptrdiff_t j = 0; j < k; ++j) {"
     " if (a[row + j] != T(0)) sum += a[row + j] * (z[row + j] - top - log_total);"
     " g[row + j] = (g[row + j] / total - a[row + j]) * scale; }"
     " loss = -sum"),
    # Whether a row of p and a row of t have their largest entry at the same
    # index: the first largest, a NaN counting as largest, as NumPy's argmax.
    # T and U may be any real or bool type: v == v is the not-NaN test, as
    # CUDA's isnan has no integer overload.
    ("matches", "raw T p, raw U t, int64 k", "bool hit",
     "const ptrdiff_t row = (ptrdiff_t)i * k; ptrdiff_t bp = 0, bt = 0;"
     " for (ptrdiff_t j = 1; j < k; ++j) {"
     " if (p[row + bp] == p[row + bp] && !(p[row + j] <= p[row + bp])) bp = j;"
     " if (t[row + bt] == t[row + bt] && !(t[row + j] <= t[row + bt])) bt = j; }"
     " hit = bp == bt"),
    # Dropout that draws its own mask: element i takes counter first + i of the
    # backend's SplitMix64 stream (base.py's random_bits), its top 24 bits as
    # u in [0, 1), and is kept where u >= p; no draws are stored or read.
    ("dropout", "T x, uint64 key, uint64 first, T p, T scale", "T y, T mask",
     "unsigned long long z = key + (first + (unsigned long long)i) * 0x9E3779B97F4A7C15ull;"
     " z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;"
     " z = (z ^ (z >> 27)) * 0x94D049BB133111EBull; z ^= z >> 31;"
     " const T u = T(z >> 40) * (T(1) / T(16777216));"
     " mask = u >= p ? scale : T(0); y = x * mask"),
    ("sgd_update", "T g, T lr", "T param", "param -= lr * g"),
    # The notebook's momentum; damping = 1 - momentum, rounded once on the host as NumPy does.
    ("momentum_update", "T g, T lr, T momentum, T damping", "T param, T velocity",
     "velocity = momentum * velocity + damping * g; param -= lr * velocity"),
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

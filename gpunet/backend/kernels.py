"""The CUDA kernels of the CuPy backend, as CuPy ElementwiseKernel specs.

``KERNELS`` maps each backend operation to the arguments of its kernel, the
CUDA operation text verbatim, so the sources can be checked without a device
(tests/test_nvrtc.py compiles each with NVRTC); ``elementwise(name)`` builds
the CuPy kernel object, once.

Every kernel is generic over its type placeholder ``T`` (float32 or float64):
constants are written ``T(1)`` and scalars arrive as ``T`` parameters, so no
float32 value is ever promoted to double. CuPy binds each array parameter to
the current element, broadcasting and following strides, and an output
parameter may be read as well as written, which makes the updates in place.
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
    # Softmax cross-entropy dL/dz = (e / total - a) * scale, written over e,
    # where e = exp(z - max z) and total is its row sum (broadcast along the row).
    ("softmax_ce_grad", "T total, T a, T scale", "T e", "e = (e / total - a) * scale"),
    # Dropout from uniform draws u in [0, 1): keep where u >= p.
    ("dropout", "T x, T u, T p, T scale", "T y, T mask",
     "mask = u >= p ? scale : T(0); y = x * mask"),
    ("sgd_update", "T g, T lr", "T param", "param -= lr * g"),
    # The notebook's momentum; damping = 1 - momentum, rounded once on the host as NumPy does.
    ("momentum_update", "T g, T lr, T momentum, T damping", "T param, T velocity",
     "velocity = momentum * velocity + damping * g; param -= lr * velocity"),
)


@functools.cache
def elementwise(name: str) -> cupy.ElementwiseKernel:
    """The ``cupy.ElementwiseKernel`` for ``KERNELS[name]``, created on first use
    (CuPy compiles it per dtype on its first call)."""
    import cupy

    spec = KERNELS[name]
    return cupy.ElementwiseKernel(spec.in_params, spec.out_params, spec.operation, spec.name)

"""A gpunet kernel spec as a standalone C++ source, for NVRTC or for the host's g++.

CuPy wraps an ElementwiseKernel's operation in code of its own; ``render`` gives
the operation, verbatim, the same context without CuPy: placeholder types
typedef'd, element ``i`` of a loop over ``n`` (``ptrdiff_t``, as CuPy's loop),
every non-raw parameter bound by reference to element ``i`` of an array (const
for inputs; a scalar, which CuPy passes by value, arrives broadcast to ``n``
elements and reads the same), every raw parameter a pointer to the whole
C-contiguous array, used by its own name. On the host ``i`` runs from 0 up, or,
built with -DHOST_REVERSED, from n - 1 down.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from gpunet.backend.kernels import KernelSpec

# The non-placeholder types a parameter may declare, as C++ spells them.
C_TYPES = {"int64": "long long", "int32": "int", "uint64": "unsigned long long", "bool": "bool",
           "float32": "float", "float64": "double"}
PLACEHOLDERS = ("T", "U")
TARGETS = ("cuda", "host")
# Where the host runs elements (or a grid's blocks) in turn, their order: with
# -DHOST_REVERSED the last first, so that one depending on another's running first fails.
HOST_ORDER = """\
#ifdef HOST_REVERSED
#define HOST_ORDER(i, n) ((n) - 1 - (i))
#else
#define HOST_ORDER(i, n) (i)
#endif"""


def host_build(source: Path, library: Path, *flags: str) -> list[str]:
    """g++'s command building ``source`` into ``library`` for the host runners:
    ``flags`` (-DHOST_REVERSED: tests/backend/conftest.py's ``host_order``), then
    those in $GPUNET_HOST_CXXFLAGS (scripts/host_sanitize.sh's sanitizers)."""
    return ["g++", "-O1", "-shared", "-fPIC", "-std=c++17", *flags,
            *os.environ.get("GPUNET_HOST_CXXFLAGS", "").split(), str(source),
            "-o", str(library)]


class Param(NamedTuple):
    name: str
    type: str  # as declared: a placeholder ("T", "U") or a key of C_TYPES
    raw: bool
    output: bool


def params(spec: KernelSpec) -> list[Param]:
    """The parameters of ``spec``, inputs then outputs, in CuPy's calling order."""
    out = []
    for output, text in ((False, spec.in_params), (True, spec.out_params)):
        for param in text.split(","):
            *raw, type_, name = param.split()
            if raw not in ([], ["raw"]) or (type_ not in PLACEHOLDERS and type_ not in C_TYPES):
                raise ValueError(f"{spec.name}: cannot render parameter {param.strip()!r}")
            out.append(Param(name, type_, bool(raw), output))
    return out


def render(spec: KernelSpec, types: Mapping[str, str], target: str) -> str:
    """``spec`` as a C++ source for ``target``: ``"cuda"``, an ``extern "C"
    __global__`` grid-stride kernel for NVRTC, or ``"host"``, an ``extern "C"``
    function looping ``i`` over ``0..n-1`` for g++. ``types`` gives each type
    placeholder the kernel uses its C type, e.g. ``{"T": "float", "U": "float"}``.
    The function is named ``spec.name`` and takes the parameters in order, then
    ``ptrdiff_t n``."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; valid targets: {', '.join(TARGETS)}")
    ps = params(spec)
    used = sorted({p.type for p in ps if p.type in PLACEHOLDERS})
    missing = [t for t in used if t not in types]
    if missing:
        raise ValueError(f"{spec.name}: no C type given for placeholder(s) {', '.join(missing)}")
    args, binds = [], []
    for p in ps:
        c_type = p.type if p.type in PLACEHOLDERS else C_TYPES[p.type]
        const = "" if p.output else "const "
        if p.raw:
            args.append(f"{const}{c_type}* {p.name}")
        else:
            args.append(f"{const}{c_type}* _raw_{p.name}")
            binds.append(f"{const}{c_type} &{p.name} = _raw_{p.name}[i];")
    if target == "cuda":  # NVRTC knows ptrdiff_t and the math functions without headers
        head = []
        signature = f'extern "C" __global__ void {spec.name}({", ".join(args + ["ptrdiff_t n"])})'
        loop = ["  for (ptrdiff_t i = (ptrdiff_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;",
                "       i += (ptrdiff_t)blockDim.x * gridDim.x) {"]
    else:
        head = ["#include <cmath>", "#include <cstddef>", "using namespace std;", HOST_ORDER]
        signature = f'extern "C" void {spec.name}({", ".join(args + ["ptrdiff_t n"])})'
        loop = ["  for (ptrdiff_t _turn = 0; _turn < n; ++_turn) {",
                "    const ptrdiff_t i = HOST_ORDER(_turn, n);"]
    return "\n".join([
        *head,
        *(f"typedef {types[t]} {t};" for t in used),
        f"{signature} {{",
        *loop,
        *(f"    {bind}" for bind in binds),
        f"    {spec.operation};",
        "  }",
        "}",
        "",
    ])

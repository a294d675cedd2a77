"""The CUDA kernels, checked without a device: each compiles with NVRTC, cleanly,
for the A100's and H100's architectures in float32 and float64, and float32
code never touches double precision but to round a result once to a declared
float64 output (a loss into the epoch's float64 metrics); each CuPy kernel
object is built once.
Each kernel compiles as ``kernel_source.render`` gives it: its operation verbatim,
in the context CuPy gives it, every placeholder (``T``, ``U``) the one float type,
and for ``matches``, which takes any dtypes as NumPy's argmax does, integer and
bool types too.

NVRTC comes from CuPy (``cupy.cuda.nvrtc``) and the ``nvidia-cuda-nvrtc-cu12``
wheel, both in gpunet's ``kernels`` extra; without them these tests skip and say so.
"""
from __future__ import annotations

from typing import Any

import pytest

from gpunet.backend.kernels import KERNELS, elementwise
from helpers.kernel_source import PLACEHOLDERS, params, render
from helpers.nvrtc import WIDENING_STORE, compiled_ptx, usable_nvrtc

ARCHS = ("compute_80", "compute_90")
# Placeholder bindings by name: each float type for every placeholder, and mixed ones.
FLOATS = {name: dict.fromkeys(PLACEHOLDERS, c) for name, c in (("float32", "float"),
                                                                ("float64", "double"))}
MIXED = {"float32-int64": {"T": "float", "U": "long long"},
         "float64-bool": {"T": "double", "U": "bool"},
         "int32-int64": {"T": "int", "U": "long long"},
         "bool-float32": {"T": "bool", "U": "float"}}
CASES = [(name, types) for name in KERNELS for types in FLOATS] + [
    ("matches", types) for types in MIXED]
# As CuPy compiles: C++17, float32 denormals flushed to zero.
OPTIONS = ("--std=c++17", "-ftz=true")


@pytest.fixture(scope="module")
def nvrtc() -> Any:
    return usable_nvrtc()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name, types", CASES)
def test_kernel_compiles_with_nvrtc(nvrtc, name, types, arch):
    spec = KERNELS[name]
    binding = {**FLOATS, **MIXED}[types]
    source = render(spec, binding, "cuda")
    ptx = compiled_ptx(nvrtc, source, f"{spec.name}.cu", OPTIONS + (f"-arch={arch}",),
                       f"{name} ({types}, {arch})", entry=spec.name)
    if "double" not in binding.values() and any(p.type in PLACEHOLDERS for p in params(spec)):
        doubles = [line.strip() for line in ptx.splitlines() if ".f64" in line]
        if any(p.type == "float64" for p in params(spec)):
            doubles = [line for line in doubles if not WIDENING_STORE.match(line)]
        assert not doubles, f"{name} promotes float32 to double:\n{ptx}"


def test_each_kernel_object_is_built_once():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[kernels]')")
    for name, spec in KERNELS.items():
        kernel = elementwise(name)
        assert isinstance(kernel, cupy.ElementwiseKernel)
        assert (kernel.name, kernel.operation) == (spec.name, spec.operation)
        assert elementwise(name) is kernel

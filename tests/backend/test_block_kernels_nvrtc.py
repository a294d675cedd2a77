"""The block kernels (gpunet/backend/block_kernels/), checked without a device:
each compiles with NVRTC, cleanly, for compute_80 and compute_90 in float32 and
float64, instantiated by its name expression as CuPy's RawModule does; float32
code never touches double precision but to round a loss once into its float64
output (the row chains of a few models' stages too); the dense backward and GEMM
loads (fused too) go through the read-only path,
so none waits behind a store (``__restrict__``); in machine code for sm_90 (ptxas, as
NVRTC runs it) no float32 kernel spills, and two GEMM blocks fit an SM; read_ahead
only asks L2 for lines; each module is built once.

NVRTC comes from CuPy (``cupy.cuda.nvrtc``) and the ``nvidia-cuda-nvrtc-cu12``
wheel, both in gpunet's ``kernels`` extra; without them these tests skip and say so.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from gpunet.backend import block_kernels
from gpunet.backend.block_kernels import (BLOCK_KERNELS, MAX_LOGITS, OPTIONS, WAVE_THREADS,
                                          kernel, name_expression, row_chain, source)
from helpers.nvrtc import WIDENING_STORE, compiled_ptx, ptxas_report, usable_nvrtc

ARCHS = ("compute_80", "compute_90")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# CuPy adds -ftz=true to every NVRTC compile (cupy/cuda/compiler.py: _compile_with_cache_cuda).
CUPY_OPTIONS = OPTIONS + ("-ftz=true",)


@pytest.fixture(scope="module")
def nvrtc() -> Any:
    return usable_nvrtc()


def ptx_of(nvrtc: Any, name: str, dtype: np.dtype, arch: str) -> str:
    """The PTX of kernel ``name`` for ``dtype``, failing the test on any diagnostic."""
    expression = name_expression(name, dtype)
    return compiled_ptx(nvrtc, source(name), f"{name}.cu", CUPY_OPTIONS + (f"-arch={arch}",),
                        f"{expression} ({arch})", expression=expression)


# Row chains (rows.py) of some models' hidden stages (activation, dropout): the deep
# model's, one stage, a bare stage between two, ROW_STAGES of them, every activation.
CHAINS = [(("tanh", True), ("tanh", True)), (("relu", False),),
          (("sigmoid", True), (None, False), ("leaky_relu", False)),
          ((None, True), ("tanh", False), ("relu", True), ("sigmoid", False))]
KERNELS = [*BLOCK_KERNELS, *(row_chain(stages) for stages in CHAINS)]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", KERNELS)
def test_block_kernel_compiles_with_nvrtc(nvrtc, name, dtype, arch):
    ptx = ptx_of(nvrtc, name, dtype, arch)
    if dtype == np.float32:
        doubles = [line.strip() for line in ptx.splitlines() if ".f64" in line]
        if "double*" in kernel(name).params:
            doubles = [line for line in doubles if not WIDENING_STORE.match(line)]
        assert not doubles, f"{name} promotes float32 to double:\n{ptx}"


@pytest.mark.parametrize("name", [name for name in BLOCK_KERNELS
                                  if name.startswith(("dense_backward", "gemm"))
                                  and "softmax" not in name])  # the output stage rereads g
def test_loads_do_not_wait_for_stores(nvrtc, name):
    """Every global load of these kernels is of a const __restrict__ input, so
    NVRTC takes the read-only path (ld.global.nc), free to run ahead of stores."""
    loads = re.findall(r"ld\.global\.\S+", ptx_of(nvrtc, name, DTYPES[0], ARCHS[-1]))
    assert loads and all(load.startswith("ld.global.nc.") for load in loads), loads


@pytest.mark.parametrize("arch", ARCHS)
def test_read_ahead_asks_l2_and_loads_nothing_but_the_state(nvrtc, arch):
    """read_ahead's PTX asks L2 for lines of the inputs and of the targets
    (``prefetch.global.L2``) and loads nothing but the state's offset: no value of
    the rows reaches a register, so it changes no number and waits on nothing."""
    ptx = ptx_of(nvrtc, "read_ahead", DTYPES[0], arch)
    assert re.findall(r"ld\.global\.\S+", ptx) == ["ld.global.nc.u64"]
    assert len(re.findall(r"prefetch\.global\.L2 ", ptx)) == 2  # the inputs, the targets


def report_of(nvrtc: Any, name: str) -> Any:
    """ptxas's report of kernel ``name`` in float32, compiled for an H200 (sm_90)."""
    return ptxas_report(nvrtc, source(name), name_expression(name, DTYPES[0]), CUPY_OPTIONS,
                        "sm_90")


@pytest.mark.parametrize("name", KERNELS)
def test_float32_kernel_spills_nothing(nvrtc, name):
    """No register spills, and the only array in local memory is the fused output
    stage's row of logits (its partial sums are registers: in an array indexed by
    a variable each term would wait on a local load and store)."""
    logits = MAX_LOGITS * DTYPES[0].itemsize if name.startswith("gemm_dense_softmax") else 0
    report = report_of(nvrtc, name)
    assert (report.spilled, report.stack) == (0, logits), report


@pytest.mark.parametrize("name", [name for name in BLOCK_KERNELS
                                  if name.startswith("gemm") and "softmax" not in name])
def test_two_gemm_blocks_fit_an_sm(nvrtc, name):
    """At most 32 registers a thread: two blocks of 1024 threads share an SM's
    65,536, the wave of 2048 threads an SM that ``slices`` counts (WAVE_THREADS)."""
    assert report_of(nvrtc, name).registers * 1024 * 2 <= 65_536
    assert WAVE_THREADS <= 132 * 2048


def test_each_module_is_built_once():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[kernels]')")
    for name in BLOCK_KERNELS:
        module = block_kernels.module(name)
        assert isinstance(module, cupy.RawModule)
        assert module.code == source(name) and module.options == OPTIONS
        assert module.name_expressions == tuple(name_expression(name, d) for d in DTYPES)
        assert block_kernels.module(name) is module

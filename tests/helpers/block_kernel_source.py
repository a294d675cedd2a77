"""The block kernels (gpunet/backend/block_kernels/) as a host library for g++ -fopenmp,
and a ``launch`` that runs them on NumPy arrays as CuPy would on CuPy's.

A CUDA block becomes an OpenMP team of blockDim.x * blockDim.y * blockDim.z threads:
``threadIdx`` comes from omp_get_thread_num(), ``__syncthreads()`` is an OpenMP
barrier, and the blocks of the grid run one after another, x fastest (last
first with -DHOST_REVERSED: ``kernel_source.host_build``). Each ``__shared__``
array becomes one static array shared by the team, filled with 0xFF bytes (NaN
as float or double) when a block first reaches it: a GPU leaves shared memory
undefined, so a kernel reading what no thread of its block wrote gets NaN here,
not zeros or another block's values. Each kernel gets an ``extern "C"`` function
per float type, ``host_<name>_<type>(grid x, grid y, block x, block y, block z,
the kernel's parameters)``.
"""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
from pathlib import Path
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gpunet.backend.block_kernels import (BLOCK_KERNELS, C_TYPES, PRELUDE, BlockKernel, chain_name,
                                          kernel, row_chain_kernel)
from helpers.kernel_source import HOST_ORDER, host_build

HOST_PRELUDE = """\
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <omp.h>
using namespace std;
struct dim3 { unsigned x, y, z; };
static dim3 gridDim, blockDim, blockIdx;
static inline dim3 thread_index()
{
  const unsigned t = omp_get_thread_num();
  return {t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
}
#define threadIdx (thread_index())
#define __global__
#define __launch_bounds__(...)
#define __device__
#define __syncthreads() _Pragma("omp barrier")
// A __shared__ array of type A at declaration Site (host_source's rewrite): filled with
// 0xFF bytes by the first of a block's threads to reach it
static unsigned long long host_block;  // the number of the block running, from 1
template <typename A, int Site> static A& host_shared()
{
  static A storage;
  static unsigned long long filled;  // the block it was last filled for
  if (__atomic_load_n(&filled, __ATOMIC_ACQUIRE) != host_block) {
    #pragma omp critical (host_shared)
    if (filled != host_block) {
      memset(&storage, 0xFF, sizeof storage);
      __atomic_store_n(&filled, host_block, __ATOMIC_RELEASE);
    }
  }
  return storage;
}
// DEVICE_PRELUDE's: each line asked of L2 noted, up to PREFETCHES_KEPT, and counted
#define PREFETCHES_KEPT (1 << 16)
static unsigned long long prefetched[PREFETCHES_KEPT];
static long long prefetches;
static inline void prefetch_l2(const void* p)
{
  #pragma omp critical
  {
    if (prefetches < PREFETCHES_KEPT) prefetched[prefetches] = (unsigned long long)p;
    ++prefetches;
  }
}
extern "C" long long host_prefetched(unsigned long long* out)
{
  const long long n = prefetches;
  for (long long i = 0; i < n && i < PREFETCHES_KEPT; ++i) out[i] = prefetched[i];
  prefetches = 0;
  return n;
}
"""
# The C types a parameter may have, as NumPy scalars (by value) or arrays (pointers).
SCALARS = {"long long": np.int64, "int": np.int32, "unsigned long long": np.uint64,
           "double": np.float64, "bool": np.bool_}


class Param(NamedTuple):
    name: str
    type: str  # the C type without const and __restrict__, "T" for the float type
    pointer: bool


def params(text: str) -> list[Param]:
    """The parameters of a kernel's C++ parameter list."""
    out = []
    for param in text.split(","):
        *words, name = param.replace("*", " * ").split()
        words = [w for w in words if w not in ("const", "__restrict__")]
        pointer = words[-1] == "*"
        out.append(Param(name, " ".join(words[:-1] if pointer else words), pointer))
    return out


def host_source(chains: tuple = (), extra: tuple[BlockKernel, ...] = ()) -> str:
    """Every block kernel, the row chains of ``chains`` (each a tuple of hidden
    stages, rows.py) and the kernels ``extra`` (each by its CUDA name), and their
    host launchers for float and double."""
    parts = [HOST_PRELUDE, HOST_ORDER, shared_on_host(PRELUDE)]
    kernels: dict[str, BlockKernel] = {**BLOCK_KERNELS, **{
        chain_name(stages): row_chain_kernel(stages) for stages in chains},
        **{block.name: block for block in extra}}
    for name, block in kernels.items():
        parts.append(shared_on_host(block.template()))
        names = ", ".join(p.name for p in params(block.params))
        for c_type in C_TYPES.values():
            typed = re.sub(r"\bT\b", c_type, block.params)
            parts.append(f"""\
extern "C" void host_{name}_{c_type}(unsigned gx, unsigned gy, unsigned bx, unsigned by,
                                  unsigned bz, {typed})
{{
  gridDim = {{gx, gy, 1}}; blockDim = {{bx, by, bz}};
  for (unsigned y = 0; y < gy; ++y)
    for (unsigned x = 0; x < gx; ++x) {{
      blockIdx = {{HOST_ORDER(x, gx), HOST_ORDER(y, gy), 0}};
      ++host_block;
      #pragma omp parallel num_threads(bx * by * bz)
      {{
        if ((unsigned)omp_get_num_threads() != bx * by * bz) abort();
        {block.name}<{c_type}>({names});
      }}
    }}
}}
""")
    return "\n".join(parts)


SHARED = re.compile(r"__shared__ (\w+) (\w+)((?:\[[^\]]+\])+);")


def shared_on_host(text: str) -> str:
    """``text`` with each ``__shared__ T name[...]...;`` a reference to its
    ``host_shared`` array; AssertionError for a ``__shared__`` of another form."""
    text = SHARED.sub(r"\1 (&\2)\3 = host_shared<\1\3, __COUNTER__>();", text)
    assert "__shared__" not in text, f"a __shared__ the host cannot place:\n{text}"
    return text


def host_launch(library: ctypes.CDLL) -> Callable[..., None]:
    """``block_kernels.launches.launch`` on the host: the same arguments, NumPy arrays in
    place of CuPy's. Each argument must be what CuPy would pass right: an array
    C-contiguous, of the pointer's type; a scalar a NumPy scalar of the
    parameter's type. Grid and block dimensions are raised to 1 as CuPy's
    ``Function.__call__`` (cupy/cuda/function.pyx) raises them. With ``bound``,
    a call that launches it again is appended to it, as a BoundLaunch would be."""
    def launch(name: str, dtype: np.dtype, grid: tuple[int, ...], block: tuple[int, ...],
               args: tuple, bound: list | None = None) -> None:
        if bound is not None:  # bound: the same launch again, whatever the stream
            bound.append(lambda stream: launch(name, dtype, grid, block, args))
        ps = params(kernel(name).params)
        assert len(args) == len(ps), f"{name} takes {len(ps)} arguments, got {len(args)}"
        values: list[Any] = []
        for p, arg in zip(ps, args):
            want = np.dtype(dtype) if p.type == "T" else np.dtype(SCALARS[p.type])
            if p.pointer:
                assert arg is None or (isinstance(arg, np.ndarray) and arg.dtype == want
                                       and arg.flags.c_contiguous), f"{name}: {p.name}"
                values.append(None if arg is None else arg.ctypes.data)
            else:
                assert type(arg) is want.type, f"{name}: {p.name} {type(arg)} is not {want}"
                values.append(np.ctypeslib.as_ctypes_type(want)(arg))
        gx, gy = (max(1, g) for g in (tuple(grid) + (1,))[:2])
        bx, by, bz = (max(1, b) for b in (tuple(block) + (1, 1))[:3])
        assert bx * by * bz <= 1024, f"{name}: {bx} x {by} x {bz} threads in a block"
        function = getattr(library, f"host_{name}_{C_TYPES[np.dtype(dtype)]}")
        function.argtypes = [ctypes.c_uint] * 5 + [
            ctypes.c_void_p if p.pointer else type(v) for p, v in zip(ps, values)]
        function(gx, gy, bx, by, bz, *values)
    launch.library = library
    return launch


def prefetched(launch: Callable[..., None]) -> list[int]:
    """The addresses ``host_launch``'s kernels asked L2 for (``prefetch_l2``),
    in no order, since this was last asked."""
    library = launch.library
    out = (ctypes.c_ulonglong * (1 << 16))()
    library.host_prefetched.restype = ctypes.c_longlong
    count = library.host_prefetched(out)
    assert count <= len(out), f"{count} lines asked of L2: more than the host keeps"
    return list(out[:count])


def lines_of(rows: np.ndarray) -> list[int]:
    """The addresses of the L2 lines holding C-contiguous ``rows`` (none for no
    rows), each as read_ahead asks for it: its first byte's, then a line on."""
    from gpunet.backend.block_kernels.ahead import LINE
    start = rows.ctypes.data
    return list(range(start // LINE * LINE, start + rows.nbytes, LINE)) if rows.nbytes else []


def build_host_launch(folder: Path, chains: tuple = ()) -> Callable[..., None]:
    """``host_launch`` of ``host_source(chains)`` compiled with g++ -fopenmp in
    ``folder``; OpenMP's threads wait passively (a team outnumbers the cores),
    unless set otherwise before libgomp loaded."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    source, library = folder / "block_kernels.cpp", folder / "block_kernels.so"
    source.write_text(host_source(chains))
    build = subprocess.run(host_build(source, library, "-fopenmp"), capture_output=True,
                           text=True)
    assert build.returncode == 0, f"g++ fails:\n{build.stderr}"
    return host_launch(ctypes.CDLL(str(library)))


def check_sums(db: np.ndarray, expected: np.ndarray, terms: np.ndarray,
               rtol: dict, atol: dict) -> None:
    """``db`` is NumPy's column sums ``expected`` of ``terms``: NaN for NaN, inf
    for inf, else within ``rtol``/``atol`` (by dtype) and the rounding of another
    order of summing."""
    dtype = expected.dtype.type
    assert db.dtype == expected.dtype and db.shape == expected.shape
    with np.errstate(all="ignore"):
        slack = len(terms) * np.finfo(dtype).eps * np.nan_to_num(np.abs(terms).sum(axis=0))
    np.testing.assert_allclose(db, expected, rtol=rtol[dtype], atol=atol[dtype] + slack.max(initial=0))

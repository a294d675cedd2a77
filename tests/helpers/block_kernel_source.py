"""The block kernels (gpunet/backend/block_kernels/) as a host library for g++, and
a ``launch`` that runs them on NumPy arrays as CuPy would on CuPy's.

A CUDA block's blockDim.x * blockDim.y * blockDim.z threads become fibers
(ucontext) on the caller's thread, run in rounds: in each, every thread in turn
runs to its next ``__syncthreads()`` or its end, in order of its number or, built
with -DHOST_REVERSED, last first (every kernel test runs both ways:
tests/backend/conftest.py's ``host_order``). So a kernel missing a barrier between
one thread's write and another's read (or a read and a later write) reads wrong in
one of the two orders, every time; a barrier that only some of a block's threads
reach fails the launch (AssertionError naming the block and thread), as CUDA leaves
it undefined. The blocks of the grid run one after another, x fastest (or last
first). Each ``__shared__`` array becomes one static array, filled with 0xFF bytes
(NaN as float or double) when a block first reaches it: a GPU leaves shared memory
undefined, so a kernel reading what no thread of its block wrote gets NaN here, not
zeros or another block's values. Each kernel gets an ``extern "C"`` function
per float type, ``host_<name>_<type>(grid x, grid y, block x, block y, block z,
the kernel's parameters)``.
"""
from __future__ import annotations

import ctypes
import re
import subprocess
from pathlib import Path
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gpunet.backend.block_kernels import (BLOCK_KERNELS, C_TYPES, PRELUDE, BlockKernel, chain_name,
                                          kernel, row_chain_kernel)
from helpers.kernel_source import HOST_ORDER, host_build
from helpers.races import overlap, span

HOST_PRELUDE = """\
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ucontext.h>
using namespace std;
struct dim3 { unsigned x, y, z; };
static dim3 gridDim, blockDim, blockIdx, threadIdx;  // threadIdx: the fiber running's
#define __global__
#define __launch_bounds__(...)
#define __device__
#define __syncthreads() host_sync(__COUNTER__)
// A block's threads as fibers on the caller's thread (host_block): in each round every
// fiber not ended runs, in turn (HOST_ORDER), to its next barrier or its end. A barrier
// some of the block's threads reach in a round and others do not (another barrier, or
// the end) ends the launch, said in host_failure.
enum { HOST_THREADS = 1024, HOST_STACK = 1 << 17 };
static ucontext_t host_caller, host_fibers[HOST_THREADS];
static char* host_stacks;
static unsigned host_running;  // the fiber running
static int host_at[HOST_THREADS];  // where each fiber is: -1 ended, else its barrier's site
static void (*host_body)(void*);
static void* host_call;
static void host_fiber()
{
  host_body(host_call);
  host_at[host_running] = -1;  // then uc_link: back to host_block
}
static void host_sync(int site)
{
  host_at[host_running] = site;
  swapcontext(&host_fibers[host_running], &host_caller);
}
static char host_failed[200];  // why the last launch ended early ("" if it did not)
extern "C" const char* host_failure() { return host_failed; }
static bool host_run_block(unsigned threads, void (*body)(void*), void* call)
{
  if (!host_stacks && !(host_stacks = (char*)malloc((size_t)HOST_THREADS * HOST_STACK))) abort();
  host_body = body;
  host_call = call;
  for (unsigned t = 0; t < threads; ++t) {
    getcontext(&host_fibers[t]);
    host_fibers[t].uc_stack.ss_sp = host_stacks + (size_t)t * HOST_STACK;
    host_fibers[t].uc_stack.ss_size = HOST_STACK;
    host_fibers[t].uc_link = &host_caller;
    makecontext(&host_fibers[t], host_fiber, 0);
    host_at[t] = 0;
  }
  for (bool waiting = true; waiting; ) {
    waiting = false;
    int site = -2;  // the barrier this round's fibers reached (-1: their end)
    for (unsigned turn = 0; turn < threads; ++turn) {
      const unsigned t = HOST_ORDER(turn, threads);
      if (host_at[t] == -1) continue;
      host_running = t;
      threadIdx = {t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
      swapcontext(&host_caller, &host_fibers[t]);
      if (site != -2 && host_at[t] != site) {
        snprintf(host_failed, sizeof host_failed,
                 "block (%u, %u): thread %u reached %s where another reached %s", blockIdx.x,
                 blockIdx.y, t, host_at[t] < 0 ? "its end" : "a barrier",
                 site < 0 ? "its end" : host_at[t] < 0 ? "a barrier" : "another barrier");
        return false;
      }
      site = host_at[t];
      waiting = waiting || site >= 0;
    }
  }
  return true;
}
template <typename Call> static bool host_block(unsigned threads, Call& call)
{
  return host_run_block(threads, [](void* c) { (*static_cast<Call*>(c))(); }, &call);
}
// A __shared__ array of type A at declaration Site (host_source's rewrite): filled with
// 0xFF bytes by the first of a block's threads to reach it
static unsigned long long host_block_number;  // the block running's, from 1
template <typename A, int Site> static A& host_shared()
{
  static A storage;
  static unsigned long long filled;  // the block it was last filled for
  if (filled != host_block_number) {
    memset(&storage, 0xFF, sizeof storage);
    filled = host_block_number;
  }
  return storage;
}
// DEVICE_PRELUDE's: each line asked of L2 noted, up to PREFETCHES_KEPT, and counted
#define PREFETCHES_KEPT (1 << 16)
static unsigned long long prefetched[PREFETCHES_KEPT];
static long long prefetches;
static inline void prefetch_l2(const void* p)
{
  if (prefetches < PREFETCHES_KEPT) prefetched[prefetches] = (unsigned long long)p;
  ++prefetches;
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
    parts = [HOST_ORDER, HOST_PRELUDE, shared_on_host(PRELUDE)]
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
  host_failed[0] = 0;
  for (unsigned y = 0; y < gy; ++y)
    for (unsigned x = 0; x < gx; ++x) {{
      blockIdx = {{HOST_ORDER(x, gx), HOST_ORDER(y, gy), 0}};
      ++host_block_number;
      auto call = [&] {{ {block.name}<{c_type}>({names}); }};
      if (!host_block(bx * by * bz, call)) return;
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
    ``Function.__call__`` (cupy/cuda/function.pyx) raises them, and must be within
    CUDA's limits; no two ``__restrict__`` arrays may overlap where one is written
    (``aliased``). A launch whose block's threads reach different barriers is an
    AssertionError. With ``bound``, a call that launches it again is appended to
    it, as a BoundLaunch would be."""
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
        # CUDA's limits (compute capability 9.0): a launch beyond them fails on a GPU
        assert bx * by * bz <= 1024 and bz <= 64, (
            f"{name}: {bx} x {by} x {bz} threads in a block")
        assert gx < 2 ** 31 and gy <= 65535, f"{name}: a grid of {gx} x {gy} blocks"
        assert not (both := aliased(kernel(name).params, args)), (
            f"{name}: {' and '.join(both)} overlap, written through a __restrict__ pointer")
        function = getattr(library, f"host_{name}_{C_TYPES[np.dtype(dtype)]}")
        function.argtypes = [ctypes.c_uint] * 5 + [
            ctypes.c_void_p if p.pointer else type(v) for p, v in zip(ps, values)]
        function(gx, gy, bx, by, bz, *values)
        assert not (failed := failure(library)), f"{name}: {failed}"
    launch.library = library
    return launch


def aliased(text: str, args: tuple) -> tuple[str, ...]:
    """Two ``__restrict__`` pointer parameters of the kernel's C++ parameter list
    ``text`` whose arrays in ``args`` overlap, one not const (written), or (): NVRTC
    may then reorder their loads and stores as if they could not."""
    restricted = [(p.split()[-1], p.split()[0] == "const", span(a))
                  for p, a in zip(text.split(","), args)
                  if "__restrict__" in p and isinstance(a, np.ndarray) and a.size]
    for i, (first, read_first, at_first) in enumerate(restricted):
        for second, read_second, at_second in restricted[i + 1:]:
            if not (read_first and read_second) and overlap([at_first], [at_second]):
                return first, second
    return ()


def failure(library: ctypes.CDLL) -> str:
    """Why the library's last launch ended early ("" if it did not)."""
    library.host_failure.restype = ctypes.c_char_p
    return library.host_failure().decode()


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


def build_host_launch(folder: Path, chains: tuple = (),
                      flags: tuple[str, ...] = ()) -> Callable[..., None]:
    """``host_launch`` of ``host_source(chains)`` compiled with g++ (and its
    ``flags``) in ``folder``."""
    source, library = folder / "block_kernels.cpp", folder / "block_kernels.so"
    source.write_text(host_source(chains))
    build = subprocess.run(host_build(source, library, *flags), capture_output=True,
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

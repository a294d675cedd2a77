"""The CUDA kernels that run as blocks sharing memory, as data, and their launches.

``BLOCK_KERNELS`` maps each name to a ``BlockKernel``: a C++ template over the
float type ``T`` whose body uses ``threadIdx``, ``blockIdx``, ``blockDim``,
``__shared__`` and ``__syncthreads()``; ``source`` renders it after ``PRELUDE``
(``column_sums``, the one reduction they share), so NVRTC
(tests/backend/test_block_kernels_nvrtc.py) and g++ with a block as an OpenMP team
(tests/backend/test_block_kernels_on_host.py) check the text CuPy compiles.

- ``dense_backward_<activation>[_dropout]``: dz = f'(y) gy (times the mask),
  elementwise, and db = its column sums; a block takes ``columns`` columns.
- ``dense_softmax_cross_entropy[_from_state]``: one block; its threads take
  rows tid, tid + blockDim, ... as kernels.py's row kernel does, then db = the
  column sums of the gradient g.
- ``gemm``: C = op(A) op(B), TILE x TILE tiles of both staged in shared memory,
  each block's sum split into up to SLICES slices that add up as a tree.
- ``gemm_<row>``: ``gemm`` with a dense forward row of kernels.py (``FUSED_ROWS``)
  as its epilogue, so a hidden stage's product and forward are one kernel.
- ``grid_<name>``: the elementwise kernels a recorded step runs (kernels.py's
  rows ``GRID_ROWS`` names), as grid-stride loops: launched as the rest are,
  so a step's every launch can be bound once (bound_launch.py).

Sums are in a fixed order, whatever the block: column c's lane p in [0, LANES)
adds x[p, c], x[p + LANES, c], ... from T(0) in row order; then the LANES
partials pair up as a tree, partial[p] += partial[p + h] for h = LANES/2, ..., 1.
No atomics, no CUB (which may allocate under a graph capture).

Every launch goes through ``launch``, so the tests can run the kernels on the
host. It relies on CuPy 14's ``RawModule`` (cupy/_core/raw.pyx: ``RawModule.
get_function`` looks a template's name expression up in the compiled module's
mapping and builds a new ``RawKernel`` on each call, hence the cache here) and
``Function.__call__`` (cupy/cuda/function.pyx: each grid and block dimension is
raised to at least 1, so a grid of 0 blocks runs one, which the kernels' bounds
make harmless; ``_pointer`` passes a CuPy array as its pointer, None as a null
pointer and a NumPy scalar by value as its dtype's C type, while a Python float
would go as a double, hence the exact NumPy scalars).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .bound_launch import Bound, BoundLaunch
from .graph_step import OFFSET
from .kernels import (ACTIVATIONS, DENSE_VARIANTS, KERNELS, KernelSpec, _activation_params,
                      _formulas, _softmax_cross_entropy, dense_kernel)

if TYPE_CHECKING:
    import cupy

Array = Any
LANES = 128  # partial sums per column: the fixed order's row stride
COLUMNS = 8  # dense_backward's columns per block: a float32 warp reads 32-byte rows
OUTPUT_THREADS = 1024  # the output stage's one block: a row a thread up to 1024 rows
TILE = 8  # gemm: TILE x TILE outputs per block, a thread each per slice of the sum
SLICES = 16  # gemm: at most this many slices of a sum per block (TILE * TILE * SLICES <= 1024)
GRID_THREADS, GRID_BLOCKS = 256, 4096  # a grid kernel's block, and at most this many blocks
OPTIONS = ("--std=c++17",)
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


@dataclass(frozen=True)
class BlockKernel:
    """A ``__global__`` template over ``T``: its CUDA name, parameters and body.
    Any block of up to 1024 threads may launch it: ``__launch_bounds__`` keeps its
    registers within what so many threads share (64 each)."""

    name: str
    params: str
    body: str

    def template(self) -> str:
        return (f"template<typename T>\n__global__ void __launch_bounds__(1024)"
                f" {self.name}({self.params})\n{{\n{self.body}\n}}\n")


# db[c] for the block's columns c = first + t % (blockDim.x / LANES), from
# entry(r * k + c) of each row r, in the module's fixed order; blockDim.x is a
# multiple of LANES, at most 1024. Every thread of the block must call it.
PRELUDE = f"""\
template<typename T, typename Entry>
__device__ void column_sums(long long rows, long long k, long long first, T* __restrict__ db,
                            Entry entry)
{{
  __shared__ T partial[1024];
  const unsigned columns = blockDim.x / {LANES}, lane = threadIdx.x / columns;
  const long long c = first + threadIdx.x % columns;
  T sum = T(0);
  if (c < k)
    for (long long r = lane; r < rows; r += {LANES}) sum += entry(r * k + c);
  partial[threadIdx.x] = sum;
  for (unsigned half = {LANES} / 2; half > 0; half /= 2) {{
    __syncthreads();
    if (lane < half) partial[threadIdx.x] += partial[threadIdx.x + half * columns];
  }}
  __syncthreads();
  if (lane == 0 && c < k) db[c] = partial[threadIdx.x];
  __syncthreads();
}}
"""


def _dense_backward(activation: str | None, dropout: bool) -> BlockKernel:
    """dz = f'(y) gy (times mask) of the (rows, k) ``outputs`` and ``grads``, and
    db = its column sums; with neither activation nor mask, db alone. Block
    ``blockIdx.x`` takes columns from blockIdx.x * blockDim.x / LANES."""
    _, gradient = _formulas(activation)
    writes = activation is not None or dropout
    params = ", ".join([*(["const T* __restrict__ outputs"] if activation else []),
                        "const T* __restrict__ grads",
                        *(["const T* __restrict__ mask"] if dropout else []),
                        "long long rows, long long k"]) + _activation_params(activation)
    params += (", T* __restrict__ dz" if writes else "") + ", T* __restrict__ db"
    entry = " ".join(["const T gy = grads[at];",
                      *(["const T y = outputs[at];"] if activation else []),
                      f"T gx = {gradient};", *(["gx *= mask[at];"] if dropout else []),
                      *(["dz[at] = gx;"] if writes else []), "return gx;"])
    return BlockKernel(
        f"gpunet_{dense_kernel('backward', activation, dropout)}", params,
        f"  column_sums(rows, k, (long long)blockIdx.x * (blockDim.x / {LANES}), db,\n"
        f"              [&](long long at) {{ {entry} }});")


def _dense_softmax_cross_entropy(from_state: bool) -> BlockKernel:
    """kernels.py's dense_softmax_cross_entropy, row r = tid, tid + blockDim, ...
    of B ``rows``, its targets, loss and hit at place + r (place = state[OFFSET]
    ``from_state``, else 0); then db = the column sums of g."""
    place = f"(long long)state[{OFFSET}]" if from_state else "0"
    row = _softmax_cross_entropy("(z[row + {0}] + bias[{0}])".format, hit=True)
    return BlockKernel(
        "gpunet_dense_softmax_cross_entropy" + ("_from_state" if from_state else ""),
        "const T* __restrict__ z, const T* __restrict__ bias, const T* __restrict__ targets,"
        " long long rows, long long k, T scale"
        + (", const unsigned long long* __restrict__ state" if from_state else "")
        + ", double* __restrict__ losses, bool* __restrict__ hits, T* __restrict__ g,"
        " T* __restrict__ db",
        "\n".join([
            f"  const long long place = {place};",
            "  const T* __restrict__ a = targets + place * k;",
            "  for (long long i = threadIdx.x; i < rows; i += blockDim.x) {",
            "    double& loss = losses[place + i]; bool& hit = hits[place + i];",
            f"    {row};", "  }",
            "  __syncthreads();",
            f"  for (long long first = 0; first < k; first += blockDim.x / {LANES})",
            "    column_sums(rows, k, first, db, [&](long long at) { return g[at]; });"]))


# C = op(a) op(b), (m, n) with row stride ldc; op(a) is (m, k), a stored (m, lda)
# or, with trans_a, (k, lda) and read transposed; b likewise. Each operand
# starts state[OFFSET] * its step elements in (none where state is null).
# Block (bx, by) takes the TILE x TILE outputs C[by T + y, bx T + x]; its
# blockDim.z slices (a power of two) split the sum: slice z adds, from T(0) and
# in order, the terms of chunks z, z + slices, ... of TILE terms each, staging
# them in its own tiles (loaded with threadIdx.x along the stored rows:
# coalesced; a round's chunks read while the round before adds up); then the
# slices' partials pair up as a tree, partial[z] += partial[z + h] for h =
# slices/2, ..., 1. Small products get many blocks, long sums many slices: a
# step's products are latency, not arithmetic.
GEMM = BlockKernel(
    "gpunet_gemm",
    "const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, long long m,"
    " long long n, long long k, long long lda, long long ldb, long long ldc, int trans_a,"
    " int trans_b, const unsigned long long* __restrict__ state, long long a_step,"
    " long long b_step",
    "\n".join([
        f"  __shared__ T a_tile[{SLICES}][{TILE}][{TILE} + 1];  // [z][i][l]: op(a)(row0+i, l0+l)",
        f"  __shared__ T b_tile[{SLICES}][{TILE}][{TILE} + 1];  // [z][l][j]: op(b)(l0+l, col0+j)",
        f"  __shared__ T partial[{SLICES}][{TILE}][{TILE}];",
        f"  const long long offset = state ? (long long)state[{OFFSET}] : 0;",
        "  a += offset * a_step; b += offset * b_step;",
        "  const unsigned x = threadIdx.x, y = threadIdx.y, z = threadIdx.z, slices = blockDim.z;",
        f"  const long long row0 = (long long)blockIdx.y * {TILE},"
        f" col0 = (long long)blockIdx.x * {TILE}, chunks = (k + {TILE} - 1) / {TILE};",
        "  // this thread's entries of op(a) and op(b) at sum index l of its tiles, 0 outside",
        "  const long long ai = row0 + (trans_a ? x : y), bj = col0 + (trans_b ? y : x);",
        "  const unsigned al = trans_a ? y : x, bl = trans_b ? x : y;",
        "  auto a_at = [&](long long l) {",
        "    return ai < m && l < k ? a[trans_a ? l * lda + ai : ai * lda + l] : T(0); };",
        "  auto b_at = [&](long long l) {",
        "    return l < k && bj < n ? b[trans_b ? bj * ldb + l : l * ldb + bj] : T(0); };",
        f"  T av = a_at(z * {TILE} + al), bv = b_at(z * {TILE} + bl), sum = T(0);",
        "  for (long long first = 0; first < chunks; first += slices) {",
        f"    const long long l0 = (first + z) * {TILE}, next = l0 + slices * {TILE};",
        "    if (trans_a) a_tile[z][x][y] = av; else a_tile[z][y][x] = av;",
        "    if (trans_b) b_tile[z][x][y] = bv; else b_tile[z][y][x] = bv;",
        "    __syncthreads();",
        "    av = a_at(next + al); bv = b_at(next + bl);  // read while this round adds",
        f"    const int depth = k - l0 < 0 ? 0 : k - l0 < {TILE} ? (int)(k - l0) : {TILE};",
        "    for (int l = 0; l < depth; ++l) sum += a_tile[z][y][l] * b_tile[z][l][x];",
        "    __syncthreads();",
        "  }",
        "  partial[z][y][x] = sum;",
        "  for (unsigned half = slices / 2; half > 0; half /= 2) {",
        "    __syncthreads();",
        "    if (z < half) partial[z][y][x] += partial[z + half][y][x];",
        "  }",
        "  if (z == 0 && row0 + y < m && col0 + x < n)",
        "    c[(row0 + y) * ldc + col0 + x] = partial[0][y][x];"]))

# A recorded step's dense stages whose forward is fused into their product's
# GEMM (``gemm_<row>``): those without dropout, and those drawing from the state.
FUSED_ROWS = [dense_kernel("forward", activation, dropout, from_state=dropout)
              for activation in (None, *ACTIVATIONS) for dropout in (False, True)]

# The elementwise kernels of a recorded step, by their rows in KERNELS: each
# with (the in-parameters that are arrays, the rest but raw ones scalars; of
# those the ones of a row, element i % k of a (k,) array; the outputs the
# operation reads, as it updates them).
GRID_ROWS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    **{dense_kernel("forward", *variant): (("z", "bias"), ("bias",), ())
       for variant in DENSE_VARIANTS},
    **{dense_kernel("forward", activation, True, from_state=True): (("z", "bias"), ("bias",), ())
       for activation in (None, *ACTIVATIONS)},
    "state_rows": ((), (), ()),
    "sgd_update_and_advance": (("g",), (), ("param",)),
    "momentum_update_and_advance": (("g",), (), ("param", "velocity")),
}
C_NAMES = {"T": "T", "uint64": "unsigned long long", "int64": "long long"}


def _grid(spec: KernelSpec, arrays: tuple[str, ...], columns: tuple[str, ...],
          updated: tuple[str, ...]) -> BlockKernel:
    """``spec``'s operation once per element i < n of a grid-stride loop, as
    CuPy's ElementwiseKernel runs it over C-contiguous arrays: an array
    parameter ``x`` is element x_[i] (x_[i % k] for ``columns``), a raw one the
    whole array, a scalar its value. No __restrict__: an output may be an input."""
    params, loads, stores = [], [], []
    for output, text in ((False, spec.in_params), (True, spec.out_params)):
        for param in text.split(", "):
            *raw, type_, name = param.split()
            const, c_type = "" if output else "const ", C_NAMES[type_]
            if raw:
                params.append(f"{const}{c_type}* {name}")
            elif output or name in arrays:
                params.append(f"{const}{c_type}* {name}_")
                at = "i % k" if name in columns else "i"
                loads.append(f"{const}{c_type} {name}"
                             + (f" = {name}_[{at}];" if name in arrays + updated else ";"))
                stores += [f"{name}_[i] = {name};"] if output else []
            else:
                params.append(f"{c_type} {name}")
    params.append("long long n" + (", long long k" if columns else ""))
    return BlockKernel(spec.name.replace("gpunet_", "gpunet_grid_", 1), ", ".join(params),
                       "\n".join([
                           "  for (long long i = (long long)blockIdx.x * blockDim.x"
                           " + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {",
                           f"    {' '.join(loads)}", f"    {spec.operation};",
                           f"    {' '.join(stores)}", "  }"]))


def _fused_gemm(spec: KernelSpec) -> BlockKernel:
    """GEMM, each output then put through a dense forward row of kernels.py as
    its z (row i of C, its bias that column's): C = y, and its other outputs
    (the mask) at the same place. The row's parameters, after GEMM's, are named
    e_<name>; in the row's own scope (a lambda) they have their names."""
    params, arguments, declared, stores = [], [], [], []
    for output, text in ((False, spec.in_params), (True, spec.out_params)):
        for param in text.split(", "):
            *raw, type_, name = param.split()
            c_type = C_NAMES[type_]
            if name in ("z", "y"):  # the GEMM's output, before and after
                continue
            if output:
                params.append(f"{c_type}* __restrict__ e_{name}")
                declared.append(f"{c_type} {name};")
                stores.append(f"e_{name}[i] = {name};")
            elif name == "bias":
                params.append(f"const {c_type}* __restrict__ e_bias")
            else:
                params.append(f"const {c_type}* __restrict__ e_{name}" if raw
                              else f"{c_type} e_{name}")
                arguments.append((f"const {c_type}* {name}" if raw else f"{c_type} {name}",
                                  f"e_{name}"))
    lambda_params = ", ".join(["const long long i, const T z, const T bias",
                               *(p for p, _ in arguments)])
    call = ", ".join(["(row0 + y) * ldc + col0 + x, partial[0][y][x], e_bias[col0 + x]",
                      *(a for _, a in arguments)])
    body = GEMM.body.rsplit("\n", 1)[0]  # but the store of C
    return BlockKernel(spec.name.replace("gpunet_", "gpunet_gemm_", 1),
                       f"{GEMM.params}, {', '.join(params)}",
                       "\n".join([body,
                                  f"    [&]({lambda_params}) {{",
                                  f"      T y; {' '.join(declared)}",
                                  f"      {spec.operation};",
                                  f"      c[i] = y; {' '.join(stores)}",
                                  f"    }}({call});"]))


BLOCK_KERNELS: dict[str, BlockKernel] = {
    **{dense_kernel("backward", *variant): _dense_backward(*variant)
       for variant in DENSE_VARIANTS},
    "dense_softmax_cross_entropy": _dense_softmax_cross_entropy(False),
    "dense_softmax_cross_entropy_from_state": _dense_softmax_cross_entropy(True),
    "gemm": GEMM,
    **{f"grid_{name}": _grid(KERNELS[name], *shape) for name, shape in GRID_ROWS.items()},
    **{f"gemm_{name}": _fused_gemm(KERNELS[name]) for name in FUSED_ROWS},
}


def source(name: str) -> str:
    """The CUDA source of ``BLOCK_KERNELS[name]``: the prelude and the template."""
    return PRELUDE + BLOCK_KERNELS[name].template()


def name_expression(name: str, dtype: np.dtype) -> str:
    """The instance of ``name``'s template for ``dtype``, e.g. "gpunet_gemm<float>"."""
    return f"{BLOCK_KERNELS[name].name}<{C_TYPES[dtype]}>"


@functools.cache
def module(name: str) -> cupy.RawModule:
    """``name``'s module, float and double, built once (compiled on first use)."""
    import cupy

    return cupy.RawModule(code=source(name), options=OPTIONS,
                          name_expressions=[name_expression(name, np.dtype(d)) for d in C_TYPES])


@functools.cache
def _function(name: str, dtype: np.dtype) -> cupy.RawKernel:
    return module(name).get_function(name_expression(name, dtype))


def launch(name: str, dtype: np.dtype, grid: tuple[int, ...], block: tuple[int, ...],
           args: tuple, bound: list[Bound] | None = None) -> None:
    """Kernel ``name`` for ``dtype`` on the current stream: ``grid`` blocks of
    ``block`` threads, ``args`` in the kernel's order (CuPy arrays, None for a
    null pointer, NumPy scalars of the parameters' exact types). With
    ``bound``, the launch is bound once, appended to it and launched bound."""
    kernel = _function(name, dtype)
    if bound is None:
        kernel(grid, block, args)
        return
    import cupy

    bound.append(BoundLaunch(cupy.cuda.driver.launchKernel, kernel.kernel.ptr, grid, block,
                             args))
    bound[-1](cupy.cuda.get_current_stream().ptr)


def launch_grid(name: str, dtype: np.dtype, n: int, args: tuple, columns: int | None = None,
                bound: list[Bound] | None = None) -> None:
    """``grid_<name>`` over ``n`` elements, ``args`` its row's parameters in
    order (arrays C-contiguous, scalars NumPy's of their exact types), then
    ``columns``, k of its row's arrays (k,), if it has them."""
    blocks = min(GRID_BLOCKS, -(-n // GRID_THREADS))
    launch(f"grid_{name}", dtype, (blocks,), (GRID_THREADS,),
           (*args, np.int64(n), *(() if columns is None else (np.int64(columns),))), bound)


def dense_backward(gy: Array, db: Array, *, y: Array | None = None, mask: Array | None = None,
                   dz: Array | None = None, activation: str | None = None,
                   values: tuple[float, ...] = (), columns: int = COLUMNS,
                   bound: list[Bound] | None = None) -> None:
    """dz = f'(y) gy (times ``mask``) into ``dz`` and db[c] = sum_r dz[r, c] into
    ``db``; with neither ``activation`` nor ``mask``, db = the sums of gy alone.
    ``values`` are the activation's parameters; every array is C-contiguous,
    (rows, k) but db (k,), of db's dtype. ``columns`` per block of columns *
    LANES threads (at most 1024 // LANES)."""
    rows, k = gy.shape
    t = db.dtype.type
    launch(dense_kernel("backward", activation, mask is not None), db.dtype,
           (-(-k // columns),), (columns * LANES,),
           (*(() if activation is None else (y,)), gy, *(() if mask is None else (mask,)),
            np.int64(rows), np.int64(k), *map(t, values),
            *(() if activation is None and mask is None else (dz,)), db), bound)


def dense_softmax_cross_entropy(z: Array, bias: Array, a: Array, scale: float, gradient: Array,
                                losses: Array, hits: Array, db: Array, *,
                                state: Array | None = None,
                                threads: int = OUTPUT_THREADS,
                                bound: list[Bound] | None = None) -> None:
    """The output stage of (B, k) logits z + ``bias`` against targets ``a``:
    each row's loss (float64) and hit, gradient = (softmax - a) * ``scale``, and
    db = its column sums, in one block of ``threads`` (a multiple of LANES).
    With a graph step's ``state``, ``a``, ``losses`` and ``hits`` are the
    epoch's, read and written from row state[OFFSET]; else the batch's. Every
    array is C-contiguous, of z's dtype but losses (float64), hits (bool) and
    state (uint64); z is left as it is."""
    rows, k = z.shape
    launch("dense_softmax_cross_entropy" + ("" if state is None else "_from_state"), z.dtype,
           (1,), (threads,),
           (z, bias, a, np.int64(rows), np.int64(k), z.dtype.type(scale),
            *(() if state is None else (state,)), losses, hits, gradient, db), bound)


def gemm(a: Array, b: Array, c: Array, *, trans_a: bool = False, trans_b: bool = False,
         state: Array | None = None, a_step: int = 0, b_step: int = 0,
         depth: int | None = None, forward: tuple[str, tuple] | None = None,
         bound: list[Bound] | None = None) -> None:
    """c = op(a) op(b), op(x) = x^T where its flag is set; every array
    C-contiguous, of c's dtype, c (m, n). With a graph step's ``state``, a
    starts a_step * state[OFFSET] elements in and b b_step * state[OFFSET]
    (a row's length: row offset state[OFFSET]). ``depth``, op(a)'s columns,
    defaults to a's; give it where a is a larger array read at an offset.
    ``forward``: (a row of FUSED_ROWS, its arguments but z and y, in its
    order), which then takes each output as its z, in place."""
    m, n = c.shape
    k = (a.shape[0] if trans_a else a.shape[1]) if depth is None else depth
    launch("gemm" if forward is None else f"gemm_{forward[0]}", c.dtype,
           (-(-n // TILE), -(-m // TILE)), (TILE, TILE, slices(k)),
           (a, b, c, np.int64(m), np.int64(n), np.int64(k), np.int64(a.shape[1]),
            np.int64(b.shape[1]), np.int64(n), np.int32(trans_a), np.int32(trans_b), state,
            np.int64(a_step), np.int64(b_step), *(() if forward is None else forward[1])),
           bound)


@functools.cache  # a step asks the same few each time: a C call, not one in Python
def slices(k: int) -> int:
    """The slices ``gemm`` splits a sum of ``k`` terms into: one per chunk of
    TILE terms, rounded up to a power of two, at most SLICES."""
    return min(SLICES, 1 << max(0, -(-k // TILE) - 1).bit_length())

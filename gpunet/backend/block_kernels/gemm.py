"""The tiled GEMM, alone or with a dense forward row of kernels.py as its epilogue."""
from __future__ import annotations

import functools
from typing import NamedTuple

from ..graph_step import OFFSET
from ..kernels import ACTIVATIONS, DENSE_VARIANTS, KernelSpec, _formulas, dense_kernel
from .template import C_NAMES, BlockKernel

TILE = 8  # TILE x TILE outputs per block, a thread each per slice of the sum
SLICES = 16  # at most this many slices of a sum per block (TILE * TILE * SLICES <= 1024)
# One wave of blocks: an H200's 132 SMs take 2048 threads each at once, whatever the
# block's size (ptxas: 32 registers a thread and 13 KB of shared memory a block).
WAVE_THREADS = 1 << 18


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


# One output of GEMM, in its order, as one thread's sum of ``depth`` terms left(l) *
# right(l) in ``slices`` slices: slice s adds, from T(0) and in order, the terms of
# chunks s, s + slices, ... of TILE terms each; then the slices pair up as a tree.
# The SLICES partials are named registers: in an array indexed by a variable they would
# live in local memory, each term a load and a store in turn.
_PARTS = range(SLICES)
SLICED_SUM = "\n".join([
    "template<typename T, typename Left, typename Right>",
    "__device__ T sliced_sum(long long depth, int slices, Left left, Right right)",
    "{",
    "  auto slice = [&](long long s) {",
    "    T sum = T(0);",
    f"    for (long long l0 = s * {TILE}; l0 < depth; l0 += slices * {TILE})",
    f"      for (long long l = l0; l < l0 + {TILE} && l < depth; ++l) sum += left(l) * right(l);",
    "    return sum; };",
    "  T " + ", ".join(f"p{s} = {s} < slices ? slice({s}) : T(0)" for s in _PARTS) + ";",
    *(f"  if ({half} < slices) {{ " + " ".join(f"p{s} += p{s + half};" for s in range(half)) + " }"
      for half in (SLICES // 2 ** e for e in range(1, SLICES.bit_length()))),
    "  return p0;",
    "}",
    ""])


# A recorded step's dense stages whose forward is fused into their product's
# GEMM (``gemm_<row>``): those without dropout, and those drawing from the state.
FUSED_ROWS = [dense_kernel("forward", activation, dropout, from_state=dropout)
              for activation in (None, *ACTIVATIONS) for dropout in (False, True)]
# A recorded step's dense backwards fused into the product that gives their gy
# (``gemm_<row>``): those that compute a dz, with an activation or dropout.
BACKWARD_ROWS = {dense_kernel("backward", activation, dropout): (activation, dropout)
                 for activation, dropout in DENSE_VARIANTS if activation or dropout}


# Where an epilogue's output i lies in C, and its sum, in GEMM's scope.
_AT, _SUM = "(row0 + y) * ldc + col0 + x", "partial[0][y][x]"


class Epilogue(NamedTuple):
    """A row of kernels.py as code run on one output of a product: the kernel
    parameters it adds, its lambda's (parameter, argument) pairs after the
    output's own (which its user gives), and its statements."""
    params: list[str]
    values: list[tuple[str, str]]
    statements: list[str]


def forward_epilogue(spec: KernelSpec, prefix: str, out: str) -> Epilogue:
    """The dense forward row ``spec`` on one output, its z: y into ``out``[i]
    and its other outputs (the mask) into ``prefix``<name>[i]. Its parameters
    are named ``prefix``<name>, the bias ``prefix``bias (its user gives the
    lambda i, z and that column's bias, in that order, then the values)."""
    params, values, declared, stores = [], [], [], []
    for output, text in ((False, spec.in_params), (True, spec.out_params)):
        for param in text.split(", "):
            *raw, type_, name = param.split()
            c_type = C_NAMES[type_]
            if name in ("z", "y"):  # the product's output, before and after
                continue
            if output:
                params.append(f"{c_type}* __restrict__ {prefix}{name}")
                declared.append(f"{c_type} {name};")
                stores.append(f"{prefix}{name}[i] = {name};")
            elif name == "bias":
                params.append(f"const {c_type}* __restrict__ {prefix}bias")
            else:
                params.append(f"const {c_type}* __restrict__ {prefix}{name}" if raw
                              else f"{c_type} {prefix}{name}")
                values.append((f"const {c_type}* {name}" if raw else f"{c_type} {name}",
                               f"{prefix}{name}"))
    return Epilogue(params, values, [f"T y; {' '.join(declared)}", f"{spec.operation};",
                                     f"{out}[i] = y; {' '.join(stores)}"])


def backward_epilogue(activation: str | None, dropout: bool, prefix: str, out: str,
                      arrays: bool = True) -> Epilogue:
    """A dense stage's backward on one output, its gy: gy into ``out``[i] and,
    with an activation or dropout, dz = f'(y) gy (times the mask) into
    ``prefix``dz[i], as reductions.py's dense_backward computes them. Its
    parameters: with ``arrays`` the stage's outputs (with an activation) and
    mask (with dropout), then the activation's scalars and dz, named
    ``prefix``<name>; its user gives the lambda i, gy, then y (with an
    activation) and keep, the mask's entry (with dropout), then the values."""
    _, gradient = _formulas(activation)
    scalars = ACTIVATIONS[activation].params if activation else ()
    writes = activation is not None or dropout
    params = [*([f"const T* __restrict__ {prefix}outputs"] if arrays and activation else []),
              *([f"const T* __restrict__ {prefix}mask"] if arrays and dropout else []),
              *(f"T {prefix}{name}" for name in scalars),
              *([f"T* __restrict__ {prefix}dz"] if writes else [])]
    return Epilogue(params, [(f"const T {name}", f"{prefix}{name}") for name in scalars],
                    [*([f"T gx = {gradient};" + (" gx *= keep;" if dropout else "")]
                       if writes else []),
                     f"{out}[i] = gy;" + (f" {prefix}dz[i] = gx;" if writes else "")])


def _with_epilogue(name: str, epilogue: Epilogue, values: list[tuple[str, str]]) -> BlockKernel:
    """GEMM with its store of C replaced by ``epilogue``, a lambda given
    ``values`` then the epilogue's own, after GEMM's own parameters."""
    body = GEMM.body.rsplit("\n", 1)[0]  # but the store of C
    values = values + epilogue.values
    return BlockKernel(name, f"{GEMM.params}, {', '.join(epilogue.params)}",
                       "\n".join([body, f"    [&]({', '.join(p for p, _ in values)}) {{",
                                  *(f"      {statement}" for statement in epilogue.statements),
                                  f"    }}({', '.join(v for _, v in values)});"]))


def fused_gemm(spec: KernelSpec) -> BlockKernel:
    """GEMM, each output then put through a dense forward row of kernels.py as
    its z (row i of C, its bias that column's): C = y, and its other outputs
    (the mask) at the same place. The row's parameters, after GEMM's, are named
    e_<name>; in the row's own scope (a lambda) they have their names."""
    return _with_epilogue(spec.name.replace("gpunet_", "gpunet_gemm_", 1),
                          forward_epilogue(spec, "e_", "c"),
                          [("const long long i", _AT), ("const T z", _SUM),
                           ("const T bias", "e_bias[col0 + x]")])


def fused_gemm_backward(activation: str | None, dropout: bool) -> BlockKernel:
    """GEMM, each output then taken as a dense stage's gy: C = gy, and dz =
    f'(y) gy (times the mask) at the same place (``backward_epilogue``; its
    column sums, db, are left to dense_backward); the stage's outputs and mask
    read at the output's place."""
    return _with_epilogue(f"gpunet_gemm_{dense_kernel('backward', activation, dropout)}",
                          backward_epilogue(activation, dropout, "e_", "c"),
                          [("const long long i", _AT), ("const T gy", _SUM),
                           *([("const T y", f"e_outputs[{_AT}]")] if activation else []),
                           *([("const T keep", f"e_mask[{_AT}]")] if dropout else [])])


def tiles(m: int, n: int) -> int:
    """The blocks ``gemm`` takes for an (m, n) product: one per TILE x TILE outputs."""
    return -(-m // TILE) * -(-n // TILE)


@functools.cache  # a step asks the same few each time: a C call, not one in Python
def slices(k: int, tiles: int = 1) -> int:
    """The slices ``gemm`` splits a sum of ``k`` terms into, each of ``tiles``
    blocks: one per chunk of TILE terms, rounded up to a power of two, at most
    SLICES, and halved while the blocks would take more than one wave
    (WAVE_THREADS), down to one. On an H200 the deep model's dz1^T x at batch
    128 (392 tiles, 16 slices: 1.5 waves) took 5.8 µs, and 11.7 when fewer of
    its blocks fitted on an SM at once (more registers a thread)."""
    count = min(SLICES, 1 << max(0, -(-k // TILE) - 1).bit_length())
    while count > 1 and tiles * TILE * TILE * count > WAVE_THREADS:
        count //= 2
    return count

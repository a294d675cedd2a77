"""The row chain: a recorded step's stages after the first, one kernel, row by row.

Past the first stage's product (whose sums run over the batch's inputs), every
product of a small dense model is row-local: row r of a stage's outputs needs
only row r of its inputs, and so do the output stage, and each backward's gy
and dz. ``row_chain_kernel`` makes one kernel of them for a model's hidden
stages: block (ROW_WIDTH, ROW_BLOCK) takes ROW_BLOCK rows, thread (c, r) column
c of row r, the row between stages in shared memory, and so the weights past
the first stage's, each staged there first as its transpose. In turn: each hidden
stage past the first, its product and forward (gemm.py's ``forward_epilogue``);
the last stage's product and the output stage (kernels.py's softmax
cross-entropy, by thread 0 of the row); each hidden stage's gy and dz, last
first (``backward_epilogue``). Every product sums in gemm.py's order for the
slices it is given (``sliced_sum``), so the kernel gives the bits of those
kernels apart. The column sums (the bias gradients) are left to
reductions.py's dense_backward.
"""
from __future__ import annotations

import functools

from ..graph_step import OFFSET
from ..kernels import KERNELS, _softmax_cross_entropy, dense_kernel
from .gemm import backward_epilogue, forward_epilogue
from .template import BlockKernel

ROW_WIDTH = 32  # a block's columns: the widest stage a chain takes
# At most so many hidden stages: the weights past the first stage's, each staged in
# shared memory as ROW_WIDTH x (ROW_WIDTH + 1) entries, fit its 48 KB in float64.
ROW_STAGES = 4
ROW_BLOCK = 8  # a block's rows (ROW_WIDTH * ROW_BLOCK threads: few warps to wait on each other)

Stage = tuple[str | None, bool]  # a hidden stage's (activation, dropout)


def chain_name(stages: tuple[Stage, ...]) -> str:
    """The kernel's name for hidden ``stages``: dense_rows_<stage>__<stage>..."""
    return "dense_rows_" + "__".join(dense_kernel("forward", activation, dropout)
                                     .removeprefix("dense_forward_")
                                     for activation, dropout in stages)


Part = tuple[list[str], list[str]]  # a piece of a chain: its parameters, its lines of body


def _lambda(values: list[tuple[str, str]], statements: list[str]) -> str:
    """A lambda of ``values``' parameters running ``statements``, called with their arguments."""
    return (f"    [&]({', '.join(p for p, _ in values)}) {{ {' '.join(statements)} }}"
            f"({', '.join(v for _, v in values)});")


def _sum(depth: str, slices: str, left: str, right: str) -> str:
    """sliced_sum of ``depth`` terms ``left`` * ``right`` (C of the term index l)."""
    return (f"sliced_sum<T>({depth}, {slices}, [&](long long l) {{ return {left}; }},"
            f" [&](long long l) {{ return {right}; }})")


def _share(s: int, value: str) -> list[str]:
    """Row r's values of stage ``s``, each thread's ``value``, put in v."""
    return ["  __syncthreads();", f"  if (live && col < n{s}) v[r][col] = {value};",
            "  __syncthreads();"]


def _staged(s: int, rows: str, columns: str) -> list[str]:
    """w<s> ((``rows``, ``columns``), read coalesced) transposed into shared
    memory, w<s>t[c][r] = w<s>[r][c]: a thread then reads its column of the
    weights, or of their transpose, from its own bank."""
    return [f"  __shared__ T w{s}t[{ROW_WIDTH}][{ROW_WIDTH} + 1];",
            f"  for (int e = threadIdx.y * blockDim.x + threadIdx.x; e < (int)({rows} * {columns});"
            " e += blockDim.x * blockDim.y)",
            f"    w{s}t[e % (int){columns}][e / (int){columns}] = w{s}[e];"]


def _forward(s: int, activation: str | None, dropout: bool) -> Part:
    """Hidden stage ``s`` > 1: its product of the row in v with w<s>, its forward
    row (bias, dropout from the state, activation), y and the mask kept in the
    thread's out<s> and keep<s>, then shared in v."""
    spec = KERNELS[dense_kernel("forward", activation, dropout, from_state=dropout)]
    epilogue = forward_epilogue(spec, f"f{s}_", f"y{s}")
    total = _sum(f"n{s - 1}", f"f{s}_slices", "v[r][l]", f"w{s}t[l][col]")
    keep = [f"keep{s} = mask;"] if dropout else []
    return ([f"const T* __restrict__ w{s}", f"int f{s}_slices", f"T* __restrict__ y{s}",
             *epilogue.params],
            [f"  T out{s} = T(0);" + (f" T keep{s} = T(1);" if dropout else ""),
             f"  if (live && col < n{s}) {{", f"    const T total = {total};",
             _lambda([("const long long i", f"at * n{s} + col"), ("const T z", "total"),
                      ("const T bias", f"f{s}_bias[col]"), *epilogue.values],
                     [*epilogue.statements, f"out{s} = y;", *keep]),
             "  }", *_share(s, f"out{s}")])


def _output(s: int) -> Part:
    """The last stage (after hidden stage ``s``): its logits, the product of the
    row in v with w<s + 1>, into o_z; then thread 0 of the row: its loss and hit
    at place + row of the epoch's, its gradient g, as kernels.py's row."""
    total = _sum(f"n{s}", "o_slices", "v[r][l]", f"w{s + 1}t[l][col]")
    row = _softmax_cross_entropy("(logits[r][{0}] + o_bias[{0}])".format, hit=True)
    return ([f"const T* __restrict__ w{s + 1}", "int o_slices", "T* __restrict__ o_z",
             "const T* __restrict__ o_bias", "const T* __restrict__ targets", "T scale",
             "double* __restrict__ losses", "bool* __restrict__ hits", "T* __restrict__ g"],
            [f"  __shared__ T logits[{ROW_BLOCK}][{ROW_WIDTH} + 1];",
             f"  if (live && col < k) o_z[at * k + col] = logits[r][col] = {total};",
             "  __syncthreads();",
             "  if (live && col == 0) {",
             f"    const long long i = at, place = (long long)state[{OFFSET}];",
             "    const T* __restrict__ a = targets + place * k;",
             "    double& loss = losses[place + i]; bool& hit = hits[place + i];",
             f"    {row};", "  }", "  __syncthreads();"])


def _backward(s: int, activation: str | None, dropout: bool, top: bool) -> Part:
    """Hidden stage ``s``'s gy, the product of the dz above (g, the ``top``
    stage's; else the row in v) with w<s + 1>, into b<s>_gy, then its dz, into
    b<s>_dz and, but for the first stage, shared in v. A stage past the first
    kept its y and mask; the first's are read from b1_outputs and b1_mask."""
    first = s == 1
    epilogue = backward_epilogue(activation, dropout, f"b{s}_", f"b{s}_gy", arrays=first)
    depth, above = ("k", "g[at * k + l]") if top else (f"n{s + 1}", "v[r][l]")
    at = f"at * n{s} + col"
    y, keep = ((f"b{s}_outputs[{at}]", f"b{s}_mask[{at}]") if first
               else (f"out{s}", f"keep{s}"))
    dz = "gx" if activation or dropout else "gy"
    total = _sum(depth, f"b{s}_slices", above, f"w{s + 1}t[col][l]")
    return ([f"int b{s}_slices", f"T* __restrict__ b{s}_gy", *epilogue.params],
            [*([] if first else [f"  T dz{s} = T(0);"]),
             f"  if (live && col < n{s}) {{", f"    const T total = {total};",
             _lambda([("const long long i", at), ("const T gy", "total"),
                      *([("const T y", y)] if activation else []),
                      *([("const T keep", keep)] if dropout else []), *epilogue.values],
                     [*epilogue.statements, *([] if first else [f"dz{s} = {dz};"])]),
             "  }", *([] if first else _share(s, f"dz{s}"))])


@functools.cache
def row_chain_kernel(stages: tuple[Stage, ...]) -> BlockKernel:
    """The row chain of a model whose hidden stages are ``stages`` (at least
    one), then the output stage. Its parameters: the rows, the state; each
    hidden stage's width n<s> and the logits' k; the first stage's outputs h1;
    then each piece's (``_forward`` of each hidden stage past the first,
    ``_output``, ``_backward`` of each hidden stage, last first), the slices
    of each product among them."""
    hidden = len(stages)
    pieces = [*(_forward(s, *stages[s - 1]) for s in range(2, hidden + 1)), _output(hidden),
              *(_backward(s, *stages[s - 1], s == hidden) for s in range(hidden, 0, -1))]
    params = ["long long rows", "const unsigned long long* __restrict__ state",
              *(f"long long n{s}" for s in range(1, hidden + 1)), "long long k",
              "const T* __restrict__ h1", *(param for piece, _ in pieces for param in piece)]
    widths = [*(f"n{s}" for s in range(1, hidden + 1)), "k"]
    body = ["  const unsigned col = threadIdx.x, r = threadIdx.y;",
            "  const long long at = (long long)blockIdx.x * blockDim.y + r;",
            "  const bool live = at < rows;",
            f"  __shared__ T v[{ROW_BLOCK}][{ROW_WIDTH} + 1];  // row r of a stage's values",
            "  if (live && col < n1) v[r][col] = h1[at * n1 + col];",
            *(line for s in range(2, hidden + 2)
              for line in _staged(s, widths[s - 1], widths[s - 2])),
            "  __syncthreads();", *(line for _, lines in pieces for line in lines)]
    return BlockKernel(f"gpunet_{chain_name(stages)}", ", ".join(params), "\n".join(body))

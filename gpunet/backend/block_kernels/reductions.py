"""The kernels that sum columns: a dense stage's backward and the output stage.

Sums are in a fixed order, whatever the block: column c's lane p in [0, LANES)
adds x[p, c], x[p + LANES, c], ... from T(0) in row order; then the LANES
partials pair up as a tree, partial[p] += partial[p + h] for h = LANES/2, ..., 1.
No atomics, no CUB (which may allocate under a graph capture).
"""
from __future__ import annotations

from ..graph_step import OFFSET
from ..kernels import _activation_params, _formulas, _softmax_cross_entropy, dense_kernel
from .gemm import SLICED_SUM
from .template import BlockKernel

LANES = 128  # partial sums per column: the fixed order's row stride
COLUMNS = 8  # dense_backward's columns per block: a float32 warp reads 32-byte rows
OUTPUT_THREADS = 1024  # the output stage's one block: a row a thread up to 1024 rows
MAX_LOGITS = 32  # the output stage with its product keeps a row's logits: at most so many


# db[c] for the block's columns c = first + t % (blockDim.x / LANES), from
# entry(r * k + c) of each row r, in the module's fixed order; blockDim.x is a
# multiple of LANES, at most 1024. Every thread of the block must call it. Then
# gemm.py's sliced_sum, one output of its order.
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
  __syncthreads();  // every lane's partial read: a later call may write them again
  if (lane == 0 && c < k) db[c] = partial[threadIdx.x];
}}
""" + SLICED_SUM


def dense_backward_kernel(activation: str | None, dropout: bool) -> BlockKernel:
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


# Row i's logits, logits[j] = sum_l h[i, l] w[j, l], in gemm.py's order.
_ROW_PRODUCT = [
    f"    T logits[{MAX_LOGITS}];",
    "    for (long long j = 0; j < k; ++j)",
    "      z[i * k + j] = logits[j] = sliced_sum<T>(depth, slices,",
    "          [&](long long l) { return h[i * depth + l]; },",
    "          [&](long long l) { return w[j * depth + l]; });"]


def softmax_cross_entropy_kernel(from_state: bool, product: bool = False) -> BlockKernel:
    """kernels.py's dense_softmax_cross_entropy, row r = tid, tid + blockDim, ...
    of B ``rows``, its targets, loss and hit at place + r (place = state[OFFSET]
    ``from_state``, else 0); then db = the column sums of g, unless db is null
    (summed aside, by dense_backward's kernel: the same order). With ``product``,
    each row's logits z = h W^T first, into z and kept for the row (at most
    MAX_LOGITS of them), each a sum of ``depth`` terms in gemm.py's order for
    ``slices`` slices: the numbers of that GEMM, then the output stage."""
    place = f"(long long)state[{OFFSET}]" if from_state else "0"
    logit = "(logits[{0}] + bias[{0}])" if product else "(z[row + {0}] + bias[{0}])"
    row = _softmax_cross_entropy(logit.format, hit=True)
    return BlockKernel(
        "gpunet_" + ("gemm_" if product else "") + "dense_softmax_cross_entropy"
        + ("_from_state" if from_state else ""),
        ("const T* __restrict__ h, const T* __restrict__ w, long long depth, int slices,"
         " T* __restrict__ z, " if product else "const T* __restrict__ z, ")
        + "const T* __restrict__ bias, const T* __restrict__ targets,"
        " long long rows, long long k, T scale"
        + (", const unsigned long long* __restrict__ state" if from_state else "")
        + ", double* __restrict__ losses, bool* __restrict__ hits, T* __restrict__ g,"
        " T* __restrict__ db",
        "\n".join([
            f"  const long long place = {place};",
            "  const T* __restrict__ a = targets + place * k;",
            "  for (long long i = threadIdx.x; i < rows; i += blockDim.x) {",
            *(_ROW_PRODUCT if product else []),
            "    double& loss = losses[place + i]; bool& hit = hits[place + i];",
            f"    {row};", "  }",
            "  if (db == nullptr) return;  // summed aside",
            "  __syncthreads();",
            f"  for (long long first = 0; first < k; first += blockDim.x / {LANES})",
            "    column_sums(rows, k, first, db, [&](long long at) { return g[at]; });"]),
        alone=True)


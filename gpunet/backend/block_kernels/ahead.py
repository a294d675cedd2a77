"""Reading ahead: the next step's rows brought into the device's L2 cache.

A graph step's first product reads its batch's rows of the epoch's inputs, which
lie in device memory (the epoch's gather wrote them long before, far more than
L2 holds): each of its rounds of loads waits on memory. Beside a step, this
kernel asks L2 for the rows the next step will read (``prefetch.global.L2``, a
hint: it loads nothing into a register, changes no value and waits on nothing),
so that step's rounds wait on L2 instead.
"""
from __future__ import annotations

from ..graph_step import OFFSET
from .template import BlockKernel

LINE = 128  # bytes of an L2 cache line: one prefetch each
AHEAD_THREADS = 256  # a block's threads, a line each per array

# Rows state[OFFSET] + batch on, ``batch`` of them but none past ``rows``, of the
# inputs and of the targets, rows of the given lengths (elements): their lines from
# the one holding the first byte to the one holding the last, thread t of the grid
# taking lines t, t + threads, ...
READ_AHEAD = BlockKernel(
    "gpunet_read_ahead",
    "const T* __restrict__ inputs, long long input_length, const T* __restrict__ targets,"
    " long long target_length, long long rows, long long batch,"
    " const unsigned long long* __restrict__ state",
    "\n".join([
        f"  const long long first = (long long)state[{OFFSET}] + batch,",
        "                  end = first + batch < rows ? first + batch : rows;",
        "  if (first >= end) return;",
        "  const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x"
        f" * {LINE};",
        "  auto ahead = [&](const T* data, long long length) {",
        "    const unsigned long long to = (unsigned long long)(data + end * length);",
        "    unsigned long long at = (unsigned long long)(data + first * length)"
        f" / {LINE} * {LINE};",
        f"    at += ((unsigned long long)blockIdx.x * blockDim.x + threadIdx.x) * {LINE};",
        "    for (; at < to; at += stride) prefetch_l2((const void*)at);",
        "  };",
        "  ahead(inputs, input_length);",
        "  ahead(targets, target_length);"]))

# What only the device has, which a host runner of the kernels defines its own way.
DEVICE_PRELUDE = """\
__device__ __forceinline__ void prefetch_l2(const void* p)
{
  asm volatile("prefetch.global.L2 [%0];" :: "l"(p));
}
"""


def ahead_blocks(batch: int, lengths: tuple[int, ...], itemsize: int) -> int:
    """Blocks enough for one line a thread of the longest of a batch's rows of
    row ``lengths`` (elements of ``itemsize`` bytes), a line more for where they
    start."""
    lines = -(-batch * max(lengths) * itemsize // LINE) + 1
    return -(-lines // AHEAD_THREADS)

"""The CUDA kernels that run as blocks sharing memory, as data, and their launches.

``BLOCK_KERNELS`` maps each name to a ``BlockKernel`` (template.py): a C++
template over the float type ``T`` whose body uses ``threadIdx``, ``blockIdx``,
``blockDim``, ``__shared__`` and ``__syncthreads()``; ``source`` renders it
after ``PRELUDE`` (``column_sums`` and ``sliced_sum``, which they share) and
``DEVICE_PRELUDE``, so NVRTC (tests/backend/test_block_kernels_nvrtc.py) and g++
with a block's threads as fibers (tests/backend/test_block_kernels_on_host.py, its
own prelude in place of DEVICE_PRELUDE) check the text CuPy compiles.

- reductions.py: ``dense_backward_<activation>[_dropout]``, dz = f'(y) gy
  (times the mask), elementwise, and db = its column sums, a block taking
  ``columns`` columns; ``dense_softmax_cross_entropy[_from_state]``, one block
  whose threads take rows tid, tid + blockDim, ... as kernels.py's row kernel
  does, then db = the column sums of the gradient g. Both sum in one fixed order.
- gemm.py: ``gemm``, C = op(A) op(B), TILE x TILE tiles of both staged in shared
  memory, each block's sum split into up to SLICES slices that add up as a tree;
  ``gemm_<row>``, the same with a dense forward row of kernels.py (``FUSED_ROWS``)
  as its epilogue, so a hidden stage's product and forward are one kernel, or
  with a dense backward's dz (``BACKWARD_ROWS``), so the product giving a stage's
  gy also gives its dz.
- grid.py: ``grid_<name>``, the elementwise kernels a recorded step runs
  (kernels.py's rows ``GRID_ROWS`` names), as grid-stride loops.
- rows.py: ``dense_rows_<stage>__<stage>...``, a model's stages past the first, forward,
  loss and backward, one kernel row by row (made for the model's stages: ``ROW_CHAINS``).
- ahead.py: ``read_ahead``, the next step's rows of the epoch's inputs and targets
  asked of L2 (``prefetch_l2``, in ``DEVICE_PRELUDE``: what only the device has,
  which the host runner defines its own way).
- launches.py: the kernels by name, each module built once, and every launch.
"""
from .ahead import DEVICE_PRELUDE
from .gemm import BACKWARD_ROWS, FUSED_ROWS, SLICES, TILE, WAVE_THREADS, slices, tiles
from .grid import GRID_BLOCKS, GRID_ROWS, GRID_THREADS
from .launches import (BLOCK_KERNELS, ROW_CHAINS, dense_backward, dense_rows,
                       dense_softmax_cross_entropy, gemm, kernel, launch_grid, module,
                       name_expression, read_ahead, row_chain, source)
from .reductions import COLUMNS, LANES, MAX_LOGITS, OUTPUT_THREADS, PRELUDE
from .rows import ROW_BLOCK, ROW_STAGES, ROW_WIDTH, chain_name, row_chain_kernel
from .template import C_TYPES, OPTIONS, BlockKernel

__all__ = ["BACKWARD_ROWS", "BLOCK_KERNELS", "C_TYPES", "COLUMNS", "DEVICE_PRELUDE",
           "FUSED_ROWS", "GRID_BLOCKS", "GRID_ROWS", "GRID_THREADS", "LANES", "MAX_LOGITS",
           "OPTIONS", "OUTPUT_THREADS", "PRELUDE", "ROW_BLOCK", "ROW_CHAINS", "ROW_STAGES",
           "ROW_WIDTH", "SLICES", "TILE", "WAVE_THREADS", "BlockKernel", "chain_name",
           "dense_backward", "dense_rows", "dense_softmax_cross_entropy", "gemm", "kernel",
           "launch_grid", "module", "name_expression", "read_ahead", "row_chain",
           "row_chain_kernel", "slices", "source", "tiles"]

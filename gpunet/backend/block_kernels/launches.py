"""Every block kernel by name, built once, and its launches.

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
from itertools import count
from typing import TYPE_CHECKING, Any

import numpy as np

from ..bound_launch import Bound, BoundLaunch
from ..activations import ACTIVATIONS, ActivationCall, activation_call
from ..kernels import DENSE_VARIANTS, KERNELS, dense_kernel
from .ahead import AHEAD_THREADS, DEVICE_PRELUDE, READ_AHEAD, ahead_blocks
from .gemm import (BACKWARD_ROWS, FUSED_ROWS, GEMM, TILE, fused_gemm, fused_gemm_backward,
                   slices, tiles)
from .grid import GRID_BLOCKS, GRID_ROWS, GRID_THREADS, grid_kernel
from .reductions import (COLUMNS, LANES, OUTPUT_THREADS, PRELUDE, dense_backward_kernel,
                         softmax_cross_entropy_kernel)
from .rows import ROW_BLOCK, ROW_WIDTH, Stage, chain_name, row_chain_kernel
from .template import C_TYPES, OPTIONS, BlockKernel

if TYPE_CHECKING:
    import cupy

Array = Any

BLOCK_KERNELS: dict[str, BlockKernel] = {
    **{dense_kernel("backward", *variant): dense_backward_kernel(*variant)
       for variant in DENSE_VARIANTS},
    **{f"{'gemm_' if product else ''}dense_softmax_cross_entropy"
       f"{'_from_state' if from_state else ''}": softmax_cross_entropy_kernel(from_state, product)
       for product in (False, True) for from_state in (False, True)},
    "gemm": GEMM,
    "read_ahead": READ_AHEAD,
    **{f"grid_{name}": grid_kernel(KERNELS[name], *shape) for name, shape in GRID_ROWS.items()},
    **{f"gemm_{name}": fused_gemm(KERNELS[name]) for name in FUSED_ROWS},
    **{f"gemm_{row}": fused_gemm_backward(*variant) for row, variant in BACKWARD_ROWS.items()},
}


# Each row chain (rows.py) a step has asked for, by name: made for a model's stages.
ROW_CHAINS: dict[str, BlockKernel] = {}


def row_chain(stages: tuple[Stage, ...]) -> str:
    """The name of the row chain of hidden ``stages``, made once (``ROW_CHAINS``)."""
    name = chain_name(stages)
    if name not in ROW_CHAINS:
        ROW_CHAINS[name] = row_chain_kernel(stages)
    return name


def kernel(name: str) -> BlockKernel:
    """``BLOCK_KERNELS[name]``, or the row chain of that name."""
    return BLOCK_KERNELS[name] if name in BLOCK_KERNELS else ROW_CHAINS[name]


def source(name: str) -> str:
    """The CUDA source of kernel ``name``: the preludes and the template."""
    return PRELUDE + DEVICE_PRELUDE + kernel(name).template()


def name_expression(name: str, dtype: np.dtype) -> str:
    """The instance of ``name``'s template for ``dtype``, e.g. "gpunet_gemm<float>"."""
    return f"{kernel(name).name}<{C_TYPES[dtype]}>"


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
                                losses: Array, hits: Array, db: Array | None, *,
                                state: Array | None = None,
                                product: tuple[Array, Array] | None = None,
                                threads: int = OUTPUT_THREADS,
                                bound: list[Bound] | None = None) -> None:
    """The output stage of (B, k) logits z + ``bias`` against targets ``a``:
    each row's loss (float64) and hit, gradient = (softmax - a) * ``scale``, and
    db = its column sums (None: not summed), in one block of ``threads`` (a
    multiple of LANES).
    With a graph step's ``state``, ``a``, ``losses`` and ``hits`` are the
    epoch's, read and written from row state[OFFSET]; else the batch's. Every
    array is C-contiguous, of z's dtype but losses (float64), hits (bool) and
    state (uint64); z is left as it is. With ``product`` = (h, w), (B, d) and
    (k, d) with k at most MAX_LOGITS, z = h w^T first, as ``gemm`` gives it."""
    rows, k = z.shape
    name = "dense_softmax_cross_entropy" + ("" if state is None else "_from_state")
    first: tuple = ()
    if product is not None:
        h, w = product
        depth = h.shape[1]
        name, first = f"gemm_{name}", (h, w, np.int64(depth),
                                       np.int32(slices(depth, tiles(rows, k))))
    launch(name, z.dtype, (1,), (threads,),
           (*first, z, bias, a, np.int64(rows), np.int64(k), z.dtype.type(scale),
            *(() if state is None else (state,)), losses, hits, gradient, db), bound)


def gemm(a: Array, b: Array, c: Array, *, trans_a: bool = False, trans_b: bool = False,
         state: Array | None = None, a_step: int = 0, b_step: int = 0,
         depth: int | None = None, epilogue: tuple[str, tuple] | None = None,
         sum_slices: int | None = None, bound: list[Bound] | None = None) -> None:
    """c = op(a) op(b), op(x) = x^T where its flag is set; every array
    C-contiguous, of c's dtype, c (m, n). With a graph step's ``state``, a
    starts a_step * state[OFFSET] elements in and b b_step * state[OFFSET]
    (a row's length: row offset state[OFFSET]). ``depth``, op(a)'s columns,
    defaults to a's; give it where a is a larger array read at an offset.
    ``epilogue``: (a row of FUSED_ROWS, its arguments but z and y, in its
    order), which then takes each output as its z, in place; or (a row of
    BACKWARD_ROWS, its kernel's arguments after GEMM's), which takes each as
    its gy, c keeping it. ``sum_slices`` (a power of two, at most SLICES)
    splits each sum into so many slices in place of ``slices``' choice for its
    blocks: each gives other bits, so a step keeps that one."""
    m, n = c.shape
    k = (a.shape[0] if trans_a else a.shape[1]) if depth is None else depth
    grid = (-(-n // TILE), -(-m // TILE))
    launch("gemm" if epilogue is None else f"gemm_{epilogue[0]}", c.dtype, grid,
           (TILE, TILE, sum_slices or slices(k, grid[0] * grid[1])),
           (a, b, c, np.int64(m), np.int64(n), np.int64(k), np.int64(a.shape[1]),
            np.int64(b.shape[1]), np.int64(n), np.int32(trans_a), np.int32(trans_b), state,
            np.int64(a_step), np.int64(b_step), *(() if epilogue is None else epilogue[1])),
           bound)


def read_ahead(inputs: Array, targets: Array, state: Array, batch: int,
               bound: list[Bound] | None = None) -> None:
    """Ask L2 for rows state[OFFSET] + ``batch`` on (``batch`` of them, those there
    are) of the epoch's ``inputs`` and ``targets`` (C-contiguous, row for row, of
    one dtype): the next step's (ahead.py)."""
    lengths = (inputs.shape[1], targets.shape[1])
    launch("read_ahead", inputs.dtype, (ahead_blocks(batch, lengths, inputs.dtype.itemsize),),
           (AHEAD_THREADS,), (inputs, np.int64(lengths[0]), targets, np.int64(lengths[1]),
                              np.int64(len(inputs)), np.int64(batch), state), bound)


def dense_rows(h1: Array, forwards: list[tuple], output: tuple, backwards: list[tuple],
               state: Array, bound: list[Bound] | None = None) -> None:
    """The row chain (``rows.row_chain_kernel``) of a model's stages past the
    first, from ``h1``, the first stage's outputs (rows, n1), its arguments
    those of ``PlannedStepOperations.dense_passes``: per later hidden stage
    (``forwards``) (w, z, bias, activation, mask, skip, dropout), z its output;
    the output stage (``output``) (w, z, bias, targets, scale, gradient,
    losses, hits, db: not summed here), from row state[OFFSET] of targets,
    losses and hits; per hidden stage, last first (``backwards``), (the
    weights above, y, gy, dz, db: not summed here, activation, mask). Each
    product sums in ``gemm``'s order for its blocks there. Every array is
    C-contiguous, of h1's dtype but losses, hits and state; widths at most
    ROW_WIDTH."""
    calls = [activation_call(a) if type(a) is str else a for *_, a, _ in backwards]
    name = row_chain(tuple((call and call.name, mask is not None)
                           for call, (*_, mask) in zip(calls[::-1], backwards[::-1])))
    rows, t = h1.shape[0], h1.dtype.type
    widths = [gy.shape[1] for _, _, gy, *_ in reversed(backwards)]
    k = output[1].shape[1]

    def sums(depth: int, width: int) -> np.int32:  # a product's slices, as gemm's
        return np.int32(slices(depth, tiles(rows, width)))

    def scalars(prefix: str, call: ActivationCall | None) -> dict:  # the activation's
        if call is None:
            return {}
        return {f"{prefix}{name}": t(value)
                for name, value in zip(ACTIVATIONS[call.name].params, call.values)}

    given = {"rows": np.int64(rows), "state": state, "k": np.int64(k), "h1": h1,
             **{f"n{s}": np.int64(n) for s, n in enumerate(widths, 1)}}
    for s, (w, z, bias, _, mask, skip, dropout), call in zip(count(2), forwards,
                                                             calls[-2::-1]):
        p, scale = dropout or (0.0, 0.0)
        given |= {f"w{s}": w, f"f{s}_slices": sums(widths[s - 2], widths[s - 1]), f"y{s}": z,
                  f"f{s}_bias": bias, f"f{s}_state": state, f"f{s}_skip": np.uint64(skip),
                  f"f{s}_p": t(p), f"f{s}_scale": t(scale), f"f{s}_mask": mask,
                  **scalars(f"f{s}_", call)}
    w, z, bias, targets, scale, g, losses, hits, _ = output
    given |= {f"w{len(widths) + 1}": w, "o_slices": sums(widths[-1], k), "o_z": z,
              "o_bias": bias, "targets": targets, "scale": t(scale), "losses": losses,
              "hits": hits, "g": g}
    for s, (_, y, gy, dz, _, _, mask), call in zip(count(len(widths), -1), backwards, calls):
        above = k if s == len(widths) else widths[s]
        given |= {f"b{s}_slices": sums(above, widths[s - 1]), f"b{s}_gy": gy,
                  f"b{s}_outputs": y, f"b{s}_mask": mask, f"b{s}_dz": dz,
                  **scalars(f"b{s}_", call)}
    launch(name, h1.dtype, (-(-rows // ROW_BLOCK),), (ROW_WIDTH, ROW_BLOCK),
           tuple(given[param] for param in kernel(name).names()), bound)

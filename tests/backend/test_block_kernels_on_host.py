"""The block kernels (gpunet/backend/block_kernels/), run on the host against NumPy.

Their text, verbatim, is compiled with g++, a CUDA block's threads fibers run in
turn between barriers (helpers/block_kernel_source.py), and block_kernels' own launch functions run
with their ``launch`` replaced by the host's, which refuses an argument CuPy
would pass wrong. Checked, float32 and float64: dense_backward against the NumPy
backend's, the output stage against its dense_softmax_cross_entropy (and the
gradient's column sums), at place 0 and at a graph state's offset; gemm
against np.matmul, every transpose, tiles cut short, offsets, k = 0; that
every column sum is bit for bit the documented order's, whatever the block;
and the lines read_ahead asks L2 for.
Not checked: CUDA's own scheduling (the blocks run in turn: in order here, last
first under scripts/host_sanitize.sh), its libm, fused multiply-adds, or speed.
"""
from __future__ import annotations

import shutil
from typing import Any

import numpy as np
import pytest

from gpunet.backend import block_kernels
from gpunet.backend.activations import ACTIVATIONS
from gpunet.backend.block_kernels import GRID_BLOCKS, GRID_THREADS, LANES, SLICES, TILE
from gpunet.backend.graph_step import OFFSET, STATE_SIZE
from helpers.block_kernel_source import build_host_launch, check_sums, lines_of, prefetched

if shutil.which("g++") is None:
    pytest.skip("g++ is not on PATH, so the block kernels cannot be compiled for the host "
                "(apt-get install g++)", allow_module_level=True)

DTYPES = (np.float32, np.float64)
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 2e-6, np.float64: 1e-14}
# (rows, columns): none, one, a few, more columns than a block of COLUMNS takes, a large batch.
SHAPES = [(0, 3), (1, 1), (7, 3), (100, 30), (1024, 10), (33, 70)]
GRAD_EXTREMES = ((0.0, np.inf), (-1.0, np.nan), (2.0, np.inf), (np.nan, 1.0), (-0.0, -np.inf))


@pytest.fixture(scope="module")
def host(tmp_path_factory, host_order) -> None:
    """block_kernels.launches.launch replaced by the host's (in each order, conftest's
    ``host_order``), for the module; it is given."""
    launch = build_host_launch(tmp_path_factory.mktemp("block_kernels"), flags=host_order)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(block_kernels.launches, "launch", launch)
        yield launch


def state_at(offset: int) -> np.ndarray:
    """A graph step's state whose rows start at ``offset``, its other entries not 0."""
    state = np.full(STATE_SIZE, 99, np.uint64)
    state[OFFSET] = offset
    return state


def draw(shape: Any, dtype: Any, low: float, high: float, seed: int,
         extremes: tuple[float, ...] = ()) -> np.ndarray:
    """Uniform values of ``shape``, the first of them (flat) replaced by ``extremes``."""
    x = np.random.default_rng(seed).uniform(low, high, shape)
    count = min(x.size, len(extremes))
    x.flat[:count] = extremes[:count]
    return x.astype(dtype)


def ordered_sums(x: np.ndarray) -> np.ndarray:
    """The column sums of ``x`` in the block kernels' order: lane p sums rows p,
    p + LANES, ... from 0, then the partials pair up, p += p + h for h = LANES/2, ..., 1."""
    partial = np.zeros((LANES, x.shape[1]), x.dtype)
    for start in range(0, len(x), LANES):
        chunk = x[start:start + LANES]
        partial[:len(chunk)] += chunk
    half = LANES // 2
    while half:
        partial[:half] += partial[half:2 * half]
        half //= 2
    return partial[0]


def backward(activation: str | None, dropout: bool, shape: tuple[int, int], dtype: Any,
             columns: int = block_kernels.COLUMNS) -> tuple[np.ndarray, ...]:
    """(y, gy, mask, dz, db) of block_kernels.dense_backward on drawn inputs."""
    y_extremes, gy_extremes = zip(*GRAD_EXTREMES)
    y = draw(shape, dtype, -1.5, 1.5, 1, y_extremes) if activation else None
    gy = draw(shape, dtype, -3.0, 3.0, 2, gy_extremes)
    mask = (draw(shape, dtype, 0.0, 1.0, 11) >= 0.3) * dtype(1 / 0.7) if dropout else None
    dz = np.full(shape, np.nan, dtype) if activation or dropout else None
    db = np.full(shape[-1:], np.nan, dtype)
    values = tuple(p.default for p in ACTIVATIONS[activation].params.values()) if activation else ()
    block_kernels.dense_backward(gy, db, y=y, mask=mask, dz=dz, activation=activation,
                                 values=values, columns=columns)
    return y, gy, mask, dz, db


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("activation", [None, *ACTIVATIONS])
def test_dense_backward(host, cpu, activation, dropout, shape, dtype):
    """dz = f'(y) gy (times the mask) and db its column sums, as the NumPy
    backend's dense_backward; with neither, db alone."""
    y, gy, mask, dz, db = backward(activation, dropout, shape, dtype)
    expected_dz, expected_db = np.full(shape, np.nan, dtype), np.full(shape[-1:], np.nan, dtype)
    with np.errstate(all="ignore"):
        terms = cpu.dense_backward(y, gy, expected_dz, expected_db, activation=activation,
                                   mask=mask)
    if dz is not None:
        np.testing.assert_allclose(dz, terms, rtol=RTOL[dtype], atol=ATOL[dtype])
    check_sums(db, expected_db, terms, RTOL, ATOL)
    np.testing.assert_array_equal(db, ordered_sums(gy if dz is None else dz))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (100, 30), (1024, 10), (33, 70)])
def test_dense_backward_sums_in_one_order_whatever_the_block(host, shape, dtype):
    """db is bit for bit the same for 1 to 1024 // LANES columns a block, and run to run."""
    most = 1024 // LANES
    runs = [backward("tanh", True, shape, dtype, columns) for columns in (1, 2, most, most)]
    for *_, dz, db in runs:
        np.testing.assert_array_equal(dz, runs[0][3])
        np.testing.assert_array_equal(db, runs[0][4])


def output_stage(shape: tuple[int, int], dtype: Any, offset: int | None = None,
                 threads: int = block_kernels.OUTPUT_THREADS) -> tuple[np.ndarray, ...]:
    """(z, bias, a, gradient, losses, hits, db) of block_kernels'
    dense_softmax_cross_entropy on drawn logits and probability targets; with
    an ``offset``, a, losses and hits are an epoch's, the batch at the offset."""
    rng = np.random.default_rng(3)
    rows, k = shape
    z = (rng.uniform(-1, 1, shape) * 10.0 ** rng.uniform(0, 2, (rows, 1))).astype(dtype)
    bias = rng.uniform(-5, 5, k).astype(dtype)
    a = rng.uniform(0, 1, shape)
    a = (a / a.sum(axis=1, keepdims=True)).astype(dtype)
    gradient, db = np.full(shape, np.nan, dtype), np.full(k, np.nan, dtype)
    scale = 1 / rows if rows else 1.0
    if offset is None:
        losses, hits = np.full(rows, np.nan), np.zeros(rows, bool)
        block_kernels.dense_softmax_cross_entropy(z.copy(), bias, a, scale, gradient, losses,
                                                  hits, db, threads=threads)
        return z, bias, a, gradient, losses, hits, db
    epoch = rows + offset + 5
    all_a = rng.uniform(0, 1, (epoch, k)).astype(dtype)
    all_a[offset:offset + rows] = a
    losses, hits = np.full(epoch, -7.0), np.arange(epoch) % 2 == 0
    block_kernels.dense_softmax_cross_entropy(z.copy(), bias, all_a, scale, gradient, losses,
                                              hits, db, state=state_at(offset),
                                              threads=threads)
    untouched = np.r_[0:offset, offset + rows:epoch]
    np.testing.assert_array_equal(losses[untouched], -7.0)
    np.testing.assert_array_equal(hits[untouched], untouched % 2 == 0)
    return z, bias, a, gradient, losses[offset:offset + rows], hits[offset:offset + rows], db


@pytest.mark.parametrize("offset", [None, 0, 13], ids=["batch", "state_0", "state_13"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_softmax_cross_entropy(host, cpu, shape, dtype, offset):
    """Each row's loss, hit and gradient as the NumPy backend's, db the gradient's
    column sums; at a state's offset only the batch's losses and hits are written."""
    z, bias, a, gradient, losses, hits, db = output_stage(shape, dtype, offset)
    expected = (np.full(shape, np.nan, dtype), np.full(shape[0], np.nan), np.zeros(shape[0], bool),
                np.full(shape[1], np.nan, dtype))
    cpu.dense_softmax_cross_entropy(z.copy(), bias, a, 1 / shape[0] if shape[0] else 1.0,
                                    *expected)
    np.testing.assert_allclose(gradient, expected[0], rtol=RTOL[dtype], atol=ATOL[dtype])
    np.testing.assert_allclose(losses, expected[1], rtol=RTOL[dtype], atol=ATOL[dtype])
    np.testing.assert_array_equal(hits, expected[2])
    check_sums(db, expected[3], expected[0], RTOL, ATOL)
    np.testing.assert_array_equal(db, ordered_sums(gradient))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(100, 30), (1024, 10), (33, 70)])
def test_output_stage_sums_in_one_order_whatever_the_block(host, shape, dtype):
    """The gradient and db are bit for bit the same for LANES to 1024 threads, and run to run."""
    runs = [output_stage(shape, dtype, threads=threads)
            for threads in (LANES, 3 * LANES, 1024, 1024)]
    for run in runs:
        for got, first in zip(run[3:], runs[0][3:]):
            np.testing.assert_array_equal(got, first)


def check_product(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``c`` is a b within the rounding a sum of k products may have (exactly 0 for k = 0)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    bound = a.shape[1] * np.finfo(c.dtype).eps * (np.abs(a) @ np.abs(b))
    assert (np.abs(c - a @ b) <= bound).all()


# (m, k, n): within a tile, cut short in each dimension, whole tiles, k = 0, m = 0;
# sums of 3 chunks (4 slices, one idle) and of more chunks than slices, cut short.
GEMM_SHAPES = [(1, 1, 1), (7, 5, 3), (17, 33, 18), (TILE, 2 * TILE, TILE), (40, 0, 5),
               (0, 4, 3), (9, 3 * TILE, 2), (3, SLICES * TILE * 2 + 5, 10)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False),
                                              (True, True)])
@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_gemm(host, shape, trans_a, trans_b, dtype):
    m, k, n = shape
    a = draw((k, m) if trans_a else (m, k), dtype, -6, 6, 16)
    b = draw((n, k) if trans_b else (k, n), dtype, -6, 6, 17)
    c = np.full((m, n), np.nan, dtype)
    block_kernels.gemm(a, b, c, trans_a=trans_a, trans_b=trans_b)
    check_product(c, a.T if trans_a else a, b.T if trans_b else b)


def sliced_product(a: np.ndarray, b: np.ndarray, count: int | None = None) -> np.ndarray:
    """a b summed in gemm's documented order: slice z of ``count`` (if None,
    slices(k, its blocks)) adds, from 0, the terms of chunks z, z + count, ... in
    order; then the slices pair up as a tree, partial[z] += partial[z + h] for h =
    count/2, ..., 1."""
    k = a.shape[1]
    count = count or block_kernels.slices(k, block_kernels.tiles(a.shape[0], b.shape[1]))
    partial = np.zeros((count, a.shape[0], b.shape[1]), a.dtype)
    for chunk in range(-(-k // TILE)):
        for term in range(chunk * TILE, min(k, (chunk + 1) * TILE)):
            partial[chunk % count] += a[:, term:term + 1] * b[term:term + 1, :]
    half = count // 2
    while half:
        partial[:half] += partial[half:2 * half]
        half //= 2
    return partial[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [TILE, 3 * TILE + 1, SLICES * TILE, SLICES * TILE * 3 - 2])
def test_gemm_sums_in_the_documented_order(host, k, dtype):
    """Each output is bit for bit the sliced sum the kernel documents, so a graph
    replay and the planned step, which launch it alike, agree exactly; 1, 4, 16
    and 16 slices, the last with a round of chunks cut short."""
    a, b = draw((9, k), dtype, -6, 6, 21), draw((k, 11), dtype, -6, 6, 22)
    c = np.full((9, 11), np.nan, dtype)
    block_kernels.gemm(a, b, c)
    np.testing.assert_array_equal(c, sliced_product(a, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count", [1, 2, 4, 8, SLICES])
def test_gemm_sums_in_the_documented_order_of_the_slices_it_is_given(host, count, dtype):
    """``sum_slices`` in place of slices(k): the sliced sum of so many slices,
    bit for bit, for a sum of 5 rounds of 16 chunks cut short."""
    k = SLICES * TILE * 5 - 3
    a, b = draw((10, k), dtype, -6, 6, 23), draw((k, 9), dtype, -6, 6, 24)
    c = np.full((10, 9), np.nan, dtype)
    block_kernels.gemm(a, b, c, sum_slices=count)
    np.testing.assert_array_equal(c, sliced_product(a, b, count))


def test_gemm_slices_are_a_power_of_two_a_chunk_each_at_most_slices():
    assert [block_kernels.slices(k) for k in (0, 1, TILE, TILE + 1, 3 * TILE, 4 * TILE + 1)] == [
        1, 1, 1, 2, 4, 8]
    assert block_kernels.slices(10**6) == SLICES and TILE * TILE * SLICES <= 1024


def test_gemm_slices_halve_until_the_blocks_take_one_wave():
    """The deep model's x W1^T at batch 128 (64 tiles) keeps its 16 slices; its
    dz1^T x (392 tiles, 1.5 waves of 16) takes 8; any number of tiles, at least 1."""
    wave = block_kernels.WAVE_THREADS // (TILE * TILE)  # tiles of one slice in a wave
    assert block_kernels.slices(784, 64) == block_kernels.slices(128, wave // SLICES) == SLICES
    assert block_kernels.slices(128, 392) == block_kernels.slices(128, wave // SLICES + 1) == 8
    assert block_kernels.slices(128, wave) == block_kernels.slices(128, 10 * wave) == 1
    assert block_kernels.slices(8, 10 * wave) == 1


def test_gemm_launches_its_blocks_with_the_slices_for_their_number(monkeypatch):
    """gemm's blocks are TILE x TILE x slices(k, blocks): 392 of 8 slices for a
    (30, 128) (128, 784) product, as the deep model's dz1^T x at batch 128."""
    launched = []
    monkeypatch.setattr(block_kernels.launches, "launch",
                        lambda name, dtype, grid, block, args, bound: launched.append(
                            (grid, block)))
    block_kernels.gemm(np.empty((128, 30), np.float32), np.empty((128, 784), np.float32),
                       np.empty((30, 784), np.float32), trans_a=True)
    assert launched == [((98, 4), (TILE, TILE, 8))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 9])
def test_gemm_reads_rows_at_the_states_offset(host, offset, dtype):
    """A graph step's products of a batch of B rows at state[OFFSET] of an
    epoch's (N, d) array: z = x W^T (x the first operand), dW = gz^T x (x the
    second, after the transposed gz, which gives k) and dW^T = x^T gz (x^T's columns
    from the offset: k given)."""
    batch, width, units = 19, 21, 17
    x = draw((batch + offset + 4, width), dtype, -1, 1, 18)
    rows = x[offset:offset + batch]
    weights, gz = draw((units, width), dtype, -1, 1, 19), draw((batch, units), dtype, -1, 1, 20)
    state = state_at(offset)
    z = np.full((batch, units), np.nan, dtype)
    block_kernels.gemm(x, weights, z, trans_b=True, state=state, a_step=width)
    check_product(z, rows, weights.T)
    dw = np.full((units, width), np.nan, dtype)
    block_kernels.gemm(gz, x, dw, trans_a=True, state=state, b_step=width)
    check_product(dw, gz.T, rows)
    xt = np.ascontiguousarray(x.T)  # (width, N): the batch's rows are columns from the offset
    dwt = np.full((width, units), np.nan, dtype)
    block_kernels.gemm(xt, gz, dwt, state=state, a_step=1, depth=batch)
    check_product(dwt, rows.T, gz)


def test_a_grid_kernel_takes_a_thread_an_element_in_at_most_grid_blocks(monkeypatch):
    """launch_grid: blocks of GRID_THREADS, as many as the elements need up to
    GRID_BLOCKS (the loop strides over the rest), n and k after the row's arguments."""
    launched = []
    monkeypatch.setattr(block_kernels.launches, "launch", lambda *args: launched.append(args))
    sizes = (1, GRID_THREADS, GRID_THREADS + 1, GRID_THREADS * GRID_BLOCKS * 2)
    for n in sizes:
        block_kernels.launch_grid("dense_forward_identity", np.dtype(np.float32), n, ("z",),
                                  columns=3)
    assert [args[2:4] for args in launched] == [((1,), (GRID_THREADS,)), ((1,), (GRID_THREADS,)),
                                                ((2,), (GRID_THREADS,)),
                                                ((GRID_BLOCKS,), (GRID_THREADS,))]
    assert [args[4] for args in launched] == [("z", np.int64(n), np.int64(3)) for n in sizes]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset, batch", [(0, 30), (30, 30), (60, 30), (69, 30), (70, 30),
                                           (99, 30), (0, 1), (98, 1), (99, 1)])
def test_read_ahead_asks_l2_for_each_line_of_the_next_steps_rows_once(host, offset, batch,
                                                                      dtype):
    """With the state at row ``offset``, the lines of rows offset + batch up to
    offset + 2 batch of the inputs and of the targets, but none past the last
    row; each once, and nothing written."""
    x, y = draw((100, 37), dtype, -1, 1, seed=70), draw((100, 3), dtype, -1, 1, seed=71)
    before, state = (x.copy(), y.copy()), state_at(offset)
    prefetched(host)  # none from before
    block_kernels.read_ahead(x, y, state, batch)
    first, end = offset + batch, min(offset + 2 * batch, len(x))
    assert sorted(prefetched(host)) == sorted(lines_of(x[first:end]) + lines_of(y[first:end]))
    for got, was in zip((x, y), before):
        np.testing.assert_array_equal(got, was)

"""CupyBackend's operations of a planned step (``cupy_planned_step.py``) as a
recorded step makes them, run on the host (``helpers/cupy_on_host.py``): each
fused kernel (a stage's product with its forward or its backward, the last
product with the output stage, the row chain) gives the bits of its parts
apart; the column sums go aside while capturing; each product takes the path
(tiled, cuBLAS) measured faster on an H200; the fallback GEMM.
"""
from __future__ import annotations

import functools
import shutil
import sys
from typing import Any

import numpy as np
import pytest

from gpunet.backend import block_kernels
from gpunet.backend.activations import ACTIVATIONS as FORMULAS
from gpunet.backend.block_kernels import FUSED_ROWS, slices
from gpunet.backend.draw_window import DrawWindow
from gpunet.backend.graph_step import StateRows, graph_state
from gpunet.backend.kernels import DENSE_VARIANTS, dense_kernel
from gpunet.backend.side_stream import Branches
from helpers.cupy_on_host import (DTYPES, EXTREMES, LAUNCHED, NumpyCublas, capturing, check,
                                  check_product, draw, logged_branches, patch_cupy, recording)
from helpers.dense_passes import CHAINS, passes_arguments

if shutil.which("g++") is None:
    pytest.skip("g++ is not on PATH, so the kernels cannot be compiled for the host "
                "(apt-get install g++)", allow_module_level=True)

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation, dropout, from_state", [
    (activation, dropout, from_state) for activation, dropout in DENSE_VARIANTS
    for from_state in (False, True)[:1 + dropout]])
def test_a_recorded_steps_dense_forward_is_the_eager_one_bit_for_bit(kernels, activation, dropout,
                                                                     from_state, dtype):
    """Recorded, dense_forward runs its row as a grid kernel (block_kernels/grid.py):
    over a (7, 3) z, its bias a row's, the same y and mask as CuPy's kernel of
    that row; z itself may be y."""
    z = draw((7, 3), dtype, seed=8, extremes=EXTREMES)
    bias = draw(3, dtype, -1.0, 1.0, seed=9)
    results = []
    for recorded in (None, "cuBLAS"):
        kernels.restart(12345, 678)
        y, mask = z.copy(), np.empty_like(z) if dropout else None
        with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
            patch.setattr(kernels, "captured_gemm", recorded, raising=False)
            kernels.dense_forward(y, bias, y, activation=activation,
                                  dropout=(0.3, 2.0) if dropout else None, mask=mask,
                                  state=(graph_state(5, 678, 12345), 40) if from_state else None)
        results.append((y, mask, kernels.drawn))
    for eager, recorded in zip(*results, strict=True):
        np.testing.assert_array_equal(eager, recorded)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [False, True], ids=["plain", "rows"])
@pytest.mark.parametrize("row", FUSED_ROWS)
def test_a_recorded_steps_product_and_forward_fused_are_them_apart_bit_for_bit(kernels, row,
                                                                              rows, dtype):
    """Recorded, gemm_dense_forward of a tiled product is one GEMM kernel with
    the stage's forward row as its epilogue: the same y (in z) and mask as the
    tiled product, then dense_forward; cuBLAS's products it leaves apart."""
    activation = next(a for a in (None, *FORMULAS) if row in (
        dense_kernel("forward", a, False), dense_kernel("forward", a, True, from_state=True)))
    dropout = row.endswith("_from_state")
    h_data, w = draw((40, 12), dtype, seed=50), draw((5, 12), dtype, seed=51)
    bias, state = draw(5, dtype, -1.0, 1.0, seed=52), graph_state(3, 678, 12345)
    h = StateRows(h_data, state, 9, np.empty((9, 12), dtype)) if rows else h_data[3:12]
    forward = dict(activation=activation, dropout=(0.3, 2.0) if dropout else None,
                   state=(state, 40) if dropout else None)
    results = []
    for way in ("fused", "apart", "cuBLAS"):
        z = np.full((9, 5), np.nan, dtype)
        mask = np.full((9, 5), np.nan, dtype) if dropout else None
        cublas = NumpyCublas()
        with recording(kernels, way, cublas):
            if way == "apart":
                kernels.gemm(h, w, out=z, trans_b=True)
                out = kernels.dense_forward(z, bias, z, mask=mask, **forward)
            else:
                out = kernels.gemm_dense_forward(h, w, z, bias, mask=mask, **forward)
        assert out is z and len(cublas.operands) == (way == "cuBLAS")
        results.append((z, mask))
    for fused, apart in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(fused, apart)
    check(results[2][0], results[0][0])  # by cuBLAS, the product's sums may round apart
    if dropout:  # the draws may not
        np.testing.assert_array_equal(results[2][1], results[0][1])


def test_an_eager_product_and_forward_are_gemm_then_dense_forward_with_its_window(kernels):
    """Not recorded (a rank's planned step), gemm_dense_forward is the product
    (cupy.matmul), then dense_forward with the rank's DrawWindow: the same y,
    mask and counters as those two called apart."""
    module = sys.modules[type(kernels).__module__]
    h, w = draw((6, 4), np.float32, seed=60), draw((3, 4), np.float32, seed=61)
    bias, window = draw(3, np.float32, seed=62), DrawWindow(rows=10, start=4)
    results = []
    for fused in (True, False):
        kernels.restart(99, 5)
        z, mask = np.empty((6, 3), np.float32), np.empty((6, 3), np.float32)
        forward = dict(activation="tanh", dropout=(0.3, 2.0), mask=mask, window=window)
        with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
            patch.setattr(module.cupy, "matmul", np.matmul, raising=False)
            if fused:
                kernels.gemm_dense_forward(h, w, z, bias, **forward)
            else:
                kernels.gemm(h, w, out=z, trans_b=True)
                kernels.dense_forward(z, bias, z, **forward)
        results.append((z, mask, kernels.drawn))
    assert results[0][2] == results[1][2] == 5 + 10 * 3
    for fused, apart in zip(*results, strict=True):
        np.testing.assert_array_equal(fused, apart)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation, dropout", DENSE_VARIANTS)
def test_a_recorded_steps_product_and_backward_fused_are_them_apart_bit_for_bit(
        kernels, activation, dropout, dtype):
    """Recorded, gemm_dense_backward of a tiled product is one GEMM kernel with
    the stage's backward row as its epilogue (a plain GEMM with neither
    activation nor dropout), then the column sums of dz alone: the same gy, dz
    and db as the tiled product, then dense_backward; cuBLAS's products it
    leaves apart."""
    g, w = draw((9, 12), dtype, -1.0, 1.0, seed=70), draw((12, 5), dtype, -1.0, 1.0, seed=71)
    y = draw((9, 5), dtype, -1.0, 1.0, seed=72) if activation else None
    mask = (draw((9, 5), dtype, 0.0, 1.0, seed=73) >= 0.3) * dtype(1 / 0.7) if dropout else None
    results = []
    for way in ("fused", "apart", "cuBLAS"):
        gy, dz, db = (np.full(shape, np.nan, dtype) for shape in ((9, 5), (9, 5), 5))
        cublas = NumpyCublas()
        del LAUNCHED[:]
        with recording(kernels, way, cublas):
            if way == "apart":
                kernels.gemm(g, w, out=gy)
                out = kernels.dense_backward(y, gy, dz, db, activation=activation, mask=mask)
            else:
                out = kernels.gemm_dense_backward(g, w, gy, y, dz, db, activation=activation,
                                                  mask=mask)
        assert out is (dz if activation or dropout else gy)
        assert len(cublas.operands) == (way == "cuBLAS")
        if way == "fused":
            row = dense_kernel("backward", activation, dropout)
            assert LAUNCHED == [f"gemm_{row}" if activation or dropout else "gemm",
                                "dense_backward_identity"]
        results.append((gy, out, db))
    for fused, apart in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(fused, apart)
    check(results[2][0], results[0][0])  # by cuBLAS, the product's sums may round apart


def test_a_recorded_backwards_column_sums_fork_aside_while_capturing(kernels):
    """Capturing (``side`` set), gemm_dense_backward's column sums, which only
    the update reads, run forked onto the sums' side stream; its product, which
    the next product reads, stays on the capture's."""
    g, w, y = (draw(shape, np.float32, seed=seed)
               for shape, seed in (((6, 4), 74), ((4, 3), 75), ((6, 3), 76)))
    side, log = logged_branches(kernels.SIDE_STREAMS)
    with capturing(kernels, side):
        kernels.gemm_dense_backward(g, w, np.empty((6, 3), np.float32), y,
                                    np.empty((6, 3), np.float32), np.empty(3, np.float32),
                                    activation="tanh")
    assert LAUNCHED == ["gemm_dense_backward_tanh", "dense_backward_identity"]
    assert log == [("fork", "sums"), ("back", "sums", ["dense_backward_identity"])]


def test_an_eager_product_and_backward_are_gemm_then_dense_backward(kernels):
    """Not recorded (a rank's planned step), gemm_dense_backward is the product
    (cupy.matmul), then dense_backward: the same gy, dz and db as the two apart."""
    module = sys.modules[type(kernels).__module__]
    g, w = draw((6, 4), np.float32, seed=77), draw((4, 3), np.float32, seed=78)
    y = draw((6, 3), np.float32, -1.0, 1.0, seed=79)
    mask = (draw((6, 3), np.float32, 0.0, 1.0, seed=80) >= 0.3) * np.float32(2.0)
    results = []
    for fused in (True, False):
        gy, dz, db = np.empty((6, 3), np.float32), np.empty((6, 3), np.float32), np.empty(
            3, np.float32)
        with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
            patch.setattr(module.cupy, "matmul", np.matmul, raising=False)
            if fused:
                kernels.gemm_dense_backward(g, w, gy, y, dz, db, activation="tanh", mask=mask)
            else:
                kernels.gemm(g, w, out=gy)
                kernels.dense_backward(y, gy, dz, db, activation="tanh", mask=mask)
        results.append((gy, dz, db))
    for fused, apart in zip(*results, strict=True):
        np.testing.assert_array_equal(fused, apart)


def fused_or_apart_output(kernels: Any, way: str, h: np.ndarray, w: np.ndarray, targets: Any,
                          state: np.ndarray | None, side: Branches | None = None
                          ) -> tuple[tuple[np.ndarray, ...], list[str]]:
    """A recorded step's last product and output stage, ``way``: "fused"
    (gemm_dense_softmax_cross_entropy) or "apart" (gemm, then
    dense_softmax_cross_entropy), captured with branches ``side`` or not;
    (z, gradient, losses, hits, db), the launches."""
    rows, k, dtype = len(h), len(w), h.dtype
    z, gradient = np.full((rows, k), np.nan, dtype), np.full((rows, k), np.nan, dtype)
    losses, hits = np.full(len(targets), np.nan), np.zeros(len(targets), bool)
    bias, db = draw(k, dtype, -1.0, 1.0, seed=83), np.full(k, np.nan, dtype)
    output = (bias, targets, 0.25, gradient, losses, hits, db, state)
    with capturing(kernels, side):
        if way == "apart":
            kernels.gemm(h, w, out=z, trans_b=True)
            kernels.dense_softmax_cross_entropy(z, *output)
        else:
            kernels.gemm_dense_softmax_cross_entropy(h, w, z, *output)
    return (z, gradient, losses, hits, db), list(LAUNCHED)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_state", [False, True], ids=["batch", "state"])
@pytest.mark.parametrize("depth, classes, count", [(3, 7, 1), (10, 7, 2), (20, 7, 4), (60, 2, 8),
                                                   (100, 2, 16)])
def test_a_recorded_steps_last_product_and_output_stage_fused_are_them_apart_bit_for_bit(
        kernels, depth, classes, count, from_state, dtype):
    """Recorded, gemm_dense_softmax_cross_entropy of a short tiled product (1 to
    16 slices, some idle) is the output stage's kernel computing each row's
    logits in the tiled GEMM's order: the same z, gradient, losses, hits and db
    as the two apart; with a graph step's state, at its rows of the epoch's."""
    assert slices(depth) == count
    h = draw((9, depth), dtype, -1.0, 1.0, seed=81)
    w = draw((classes, depth), dtype, -1.0, 1.0, seed=82)
    targets = np.eye(classes, dtype=dtype)[np.arange(20) % classes]
    state = graph_state(5, 0, 0) if from_state else None
    targets = targets if from_state else targets[:9]
    fused, launched = fused_or_apart_output(kernels, "fused", h, w, targets, state)
    apart, _ = fused_or_apart_output(kernels, "apart", h, w, targets, state)
    assert launched == ["gemm_dense_softmax_cross_entropy" + ("_from_state" if from_state else "")]
    for got, expected in zip(fused, apart, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("way", ["fused", "apart"])
@pytest.mark.parametrize("from_state", [False, True], ids=["batch", "state"])
def test_a_captured_output_stages_column_sums_fork_aside_giving_the_same_bits(kernels, way,
                                                                              from_state):
    """Capturing (``side`` set), the output stage leaves its bias gradient's
    column sums, which only the update reads, to dense_backward's kernel forked
    onto the sums' branch: the same z, gradient, losses, hits and db as the
    output stage's one kernel summing them, not capturing."""
    h = draw((9, 10), np.float32, -1.0, 1.0, seed=86)
    w = draw((7, 10), np.float32, -1.0, 1.0, seed=87)
    targets = np.eye(7, dtype=np.float32)[np.arange(20) % 7]
    state = graph_state(5, 0, 0) if from_state else None
    targets = targets if from_state else targets[:9]
    side, log = logged_branches(kernels.SIDE_STREAMS)
    captured, launched = fused_or_apart_output(kernels, way, h, w, targets, state, side)
    alone, _ = fused_or_apart_output(kernels, way, h, w, targets, state)
    stage = ("gemm_" if way == "fused" else "") + "dense_softmax_cross_entropy" + (
        "_from_state" if from_state else "")
    assert launched == [*(["gemm"] if way == "apart" else []), stage, "dense_backward_identity"]
    assert log == [("fork", "sums"), ("back", "sums", ["dense_backward_identity"])]
    for got, expected in zip(captured, alone, strict=True):
        np.testing.assert_array_equal(got, expected)


def passes(kernels: Any, way: str, chain: str, dtype: Any, side: Branches | None = None
           ) -> tuple[dict[str, np.ndarray], list[str]]:
    """What a recorded step's ``dense_passes`` of CHAINS[chain] writes, ``way``
    "chained" (the backend's) or "apart" (the base class's: its parts, each fused
    as the backend fuses it), captured with branches ``side`` or not; the launches."""
    from gpunet.backend.planned_step import PlannedStepOperations
    (x, forwards, output, backwards, state), written = passes_arguments(*CHAINS[chain], dtype)
    passes = kernels.dense_passes if way == "chained" else functools.partial(
        PlannedStepOperations.dense_passes, kernels)
    with capturing(kernels, side):
        dz = passes(x, forwards, output, backwards, state)
    first = backwards[-1]
    assert dz is (first[2] if first[3] is None else first[3])
    return written, list(LAUNCHED)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chain", CHAINS)
def test_a_recorded_steps_stages_past_the_first_row_by_row_are_them_apart_bit_for_bit(
        kernels, chain, dtype):
    """Recorded, ``dense_passes`` runs the first stage's fused product, then the
    row chain (every later forward, the loss, every backward, in the tiled
    GEMM's order of each product), then the column sums: every output, mask,
    logit, loss, hit, gradient, gy, dz and bias gradient those kernels give
    apart, bit for bit, in rows over more than one block (37)."""
    stages, _, _ = CHAINS[chain]
    chained, launched = passes(kernels, "chained", chain, dtype)
    apart, _ = passes(kernels, "apart", chain, dtype)
    assert launched[1:] == [block_kernels.chain_name(stages)] + ["dense_backward_identity"] * (
        len(stages) + 1)
    for name, expected in apart.items():
        np.testing.assert_array_equal(chained[name], expected, err_msg=name)
    assert not np.isnan(chained["dz1" if "dz1" in chained else "gy1"]).any()


def test_a_captured_row_chains_column_sums_fork_aside(kernels):
    """Capturing, the row chain's column sums (the output stage's, then each
    hidden stage's, last first), which only the update reads, go each onto a
    branch of the sums' own."""
    side, log = logged_branches(kernels.SIDE_STREAMS)
    _, launched = passes(kernels, "chained", "deep", np.float32, side)
    assert log == [entry for name in ("sums", "sums 2", "sums 3")
                   for entry in (("fork", name), ("back", name, ["dense_backward_identity"]))]
    assert launched[:2] == ["gemm_dense_forward_tanh_dropout_from_state",
                            "dense_rows_tanh_dropout__tanh_dropout"]


@pytest.mark.parametrize("why", ["too wide", "too many stages", "not recorded", "no state",
                                 "cuBLAS's product"])
def test_dense_passes_takes_its_parts_beyond_the_row_chain(kernels, why):
    """Stages wider than ROW_WIDTH or more than ROW_STAGES of them, a step not
    recorded or without a graph step's state, or a product cuBLAS would take:
    the parts, not the chain."""
    module = sys.modules[type(kernels).__module__]
    stages, widths, k = CHAINS["one hidden stage"]
    if why == "too wide":
        widths = (block_kernels.ROW_WIDTH + 1,)
    elif why == "too many stages":
        stages, widths = stages * (block_kernels.ROW_STAGES + 1), widths * (
            block_kernels.ROW_STAGES + 1)
    (x, forwards, output, backwards, state), _ = passes_arguments(stages, widths, k, np.float32)
    if why == "no state":  # the batch's targets, losses and hits
        w, z, bias, targets, scale, g, losses, hits, db = output
        output = (w, z, bias, targets[5:42], scale, g, losses[5:42], hits[5:42], db)
    del LAUNCHED[:]
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(kernels, "captured_gemm", None if why == "not recorded" else "cuBLAS",
                      raising=False)
        patch.setattr(module.cupy, "matmul", np.matmul, raising=False)
        if why == "cuBLAS's product":
            patch_cupy(patch, "_tiled", lambda *args: False)
            patch_cupy(patch, "captured_cublas", lambda: NumpyCublas())
        kernels.dense_passes(x, forwards, output, backwards, None if why == "no state" else state)
    assert not any(name.startswith("dense_rows") for name in LAUNCHED), LAUNCHED


@pytest.mark.parametrize("h_shape, w_shape", [((9, 26), (10, 26)), ((9, 2), (33, 2))],
                         ids=["too many terms", "too many logits"])
def test_a_recorded_output_stage_takes_its_product_apart_beyond_its_bounds(kernels, h_shape,
                                                                            w_shape):
    """A row's logits of more than FUSED_OUTPUT_TERMS terms, or more than
    MAX_LOGITS of them, are the tiled product, then the output stage."""
    h, w = draw(h_shape, np.float32, seed=84), draw(w_shape, np.float32, seed=85)
    targets = np.eye(len(w), dtype=np.float32)[np.arange(9) % len(w)]
    fused, launched = fused_or_apart_output(kernels, "fused", h, w, targets, None)
    apart, _ = fused_or_apart_output(kernels, "apart", h, w, targets, None)
    assert launched == ["gemm", "dense_softmax_cross_entropy"]
    for got, expected in zip(fused, apart, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rows", [False, True], ids=["plain", "rows"])
def test_a_recorded_forward_product_of_300_terms_is_fused_only_reading_the_rows(kernels, rows):
    """A sum of 300 terms takes the tiled kernel, and so its forward, only
    reading the batch's rows (TILED_ROWS_SUM); plain, it is cuBLAS's."""
    data, w, bias = (draw(shape, np.float32, seed=seed)
                     for shape, seed in (((12, 300), 63), ((5, 300), 64), (5, 65)))
    state = graph_state(2, 0, 0)
    h = StateRows(data, state, 8, np.empty((8, 300), np.float32)) if rows else data[2:10]
    cublas, z = NumpyCublas(), np.empty((8, 5), np.float32)
    del LAUNCHED[:]
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        patch_cupy(patch, "captured_cublas", lambda: cublas)
        kernels.gemm_dense_forward(h, w, z, bias, activation="tanh")
    assert len(cublas.operands) == (not rows)
    assert LAUNCHED == (["gemm_dense_forward_tanh"] if rows else ["grid_dense_forward_tanh"])
    check(z, np.tanh(data[2:10] @ w.T + bias))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 5, 3), (16, 30, 10)])
def test_fallback_gemm(kernels, cpu, shape, trans_a, trans_b, dtype):
    """The GEMM kernel a capture falls back on, on the transposed views a planned
    step passes: within the rounding a sum of k products may have."""
    m, k, n = shape
    a = draw((k, m) if trans_a else (m, k), dtype, seed=16)
    b = draw((n, k) if trans_b else (k, n), dtype, seed=17)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "captured_gemm", "fallback GEMM", raising=False)
        out = np.full((m, n), np.nan, dtype)
        assert kernels.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b) is out
    check_product(out, (a.T if trans_a else a), (b.T if trans_b else b))


@pytest.mark.parametrize("k", [1, 32, 33])
def test_a_recorded_steps_small_products_take_the_tiled_kernel(kernels, k):
    """On the cuBLAS path, a product summing at most TILED_SUM terms (here 32)
    runs the tiled GEMM kernel, a longer one cuBLAS; both give the product."""
    a, b = draw((5, k), np.float32, seed=19), draw((k, 3), np.float32, seed=20)
    cublas = NumpyCublas()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        patch_cupy(patch, "captured_cublas", lambda: cublas)
        patch_cupy(patch, "TILED_SUM", 32)
        out = kernels.gemm(a, b, np.full((5, 3), np.nan, np.float32))
    check_product(out, a, b)
    assert bool(cublas.operands) == (k > 32)


# (m, n, k, whether it reads the batch's rows) of products the tiled kernel ran faster
# than cuBLAS on an H200 (reading the rows in place against cuBLAS after its copy of
# them), and of some it ran slower: the deep and wide models' at batch 128 and 1024.
# The deep model's dz1^T x at 128 took as long either way (5.8 µs tiled, 4.1 + 1.6 by
# cuBLAS and the copy), and tiled spares a bound step a launch and a libcublas call.
FASTER_TILED = [(128, 10, 30, False), (10, 30, 128, False), (128, 30, 10, False),
                (128, 128, 256, False), (10, 128, 128, False), (1024, 30, 10, False),
                (1024, 128, 10, False), (10, 30, 256, False), (128, 30, 784, True),
                (30, 784, 128, True)]


FASTER_BY_CUBLAS = [(128, 30, 784, False), (30, 784, 128, False), (128, 256, 128, False),
                    (10, 10, 1024, False), (256, 128, 256, False), (1024, 128, 256, False),
                    (1024, 30, 784, True), (30, 784, 1024, True), (128, 256, 784, True),
                    (256, 784, 128, True)]


def test_a_recorded_steps_products_take_the_path_measured_faster(kernels):
    """``_tiled`` sends the products the tiled kernel ran faster on an H200 to it,
    and those cuBLAS ran faster to cuBLAS: a sum of at most TILED_SUM terms
    (TILED_ROWS_SUM reading the batch's rows) over at most TILED_THREADS threads,
    one wave; reading the rows, a sum of at most TILED_SUM over two waves."""
    from gpunet.backend.cupy_planned_step import _tiled as tiled
    assert [tiled(*shape) for shape in FASTER_TILED] == [True] * len(FASTER_TILED)
    assert [tiled(*shape) for shape in FASTER_BY_CUBLAS] == [False] * len(FASTER_BY_CUBLAS)


def test_a_product_a_block_past_one_wave_takes_cublas(kernels):
    """``_tiled`` counts whole blocks of TILE x TILE outputs: a sum of 64 terms
    (8 slices, 512 threads a block) over 2 x 256 blocks fits one wave, over 2 x
    257 (one output past) does not, whichever side it is on."""
    from gpunet.backend.cupy_planned_step import _tiled as tiled
    assert tiled(9, 2048, 64, False) and tiled(2048, 9, 64, False)
    assert not tiled(9, 2049, 64, False) and not tiled(2049, 9, 64, False)


def test_a_product_reading_the_rows_takes_two_waves_for_a_short_sum_one_for_a_long(kernels):
    """Reading the batch's rows, a sum of at most TILED_SUM terms (here 64: 512
    threads a block) is tiled over up to two waves (2 x 512 blocks, not 2 x 513);
    a longer one (257 terms: 16 slices, 1024 threads) over one (2 x 128, not 2 x 129)."""
    from gpunet.backend.cupy_planned_step import _tiled as tiled
    assert tiled(9, 4096, 64, True) and not tiled(9, 4097, 64, True)
    assert tiled(9, 2048, 256, True) and not tiled(9, 2056, 256, True)  # TILED_SUM itself
    assert tiled(9, 1024, 257, True) and not tiled(9, 1025, 257, True)

"""The NumPy backend's matrix products in C (``host_gemm.py``, ``host_gemm.c``): as
exact as float32 sums allow, each element's sum in one order whatever the blocks
or addresses, NumPy's where the kernels do not take a product, and the backend's
large products theirs while the C is on; ``NumpyBackend.empty``'s 64-byte start."""
from __future__ import annotations

import ctypes
import mmap
from types import SimpleNamespace

import numpy as np
import pytest

import gpunet
from gpunet.backend import host_gemm
from gpunet.backend.host_gemm import GEMM_WORK, THIN, product
from gpunet.backend.numpy_backend import ALIGNMENT

needs_kernels = pytest.mark.skipif(
    host_gemm.kernels() is None,
    reason="no host_gemm.c here (no C compiler, or a CPU without AVX-512F): NumPy's products")

# (m, k, n): the tails of every block (4 x 6 dots over 16 terms, 6 rows x 64 columns)
SHAPES = [(1, 1, 1), (3, 5, 7), (4, 16, 6), (5, 17, 13), (9, 33, 65), (128, 784, 30),
          (37, 130, 129), (2, 300, 1)]
LAYOUTS = ("a b^T", "a^T b", "a b")  # the deep model's forward, weight and input gradients


def operands(m: int, k: int, n: int, layout: str, seed: int = 0) -> tuple[np.ndarray, ...]:
    """float32 a (m x k) and b (k x n) as views laid out as ``layout`` names them."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    if layout == "a b^T":
        b = np.ascontiguousarray(b.T).T
    elif layout == "a^T b":
        a = np.ascontiguousarray(a.T).T
    return a, b


def kernel_product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``a b`` by the kernel ``product`` would take, whatever its size."""
    lib, (m, k), n = host_gemm.kernels(), a.shape, b.shape[1]
    (a0, a1), (b0, b1) = (s // 4 for s in a.strides), (s // 4 for s in b.strides)
    if b0 == 1 and a1 == 1:
        lib.gemm_dots(a.ctypes.data, b.ctypes.data, out.ctypes.data, m, n, k, a0, b1, n)
    else:
        sr, sp = (1, a0) if a1 == 1 else (a1, 1)
        lib.gemm_axpys(a.ctypes.data, b.ctypes.data, out.ctypes.data, m, n, k, sr, sp, b0, n)
    return out


def placed(x: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``x`` laid out as ``x`` is, ``offset`` bytes past a 64-byte boundary."""
    raw = np.empty(x.nbytes + 128, np.uint8)
    start = -raw.ctypes.data % 64 + offset
    copy = raw[start:start + x.nbytes].view(np.float32)
    if x.flags.c_contiguous:
        copy = copy.reshape(x.shape)
    else:
        copy = copy.reshape(x.shape[::-1]).T
    copy[...] = x
    return copy


def at_page_end(x: np.ndarray, keep: list) -> np.ndarray:
    """A copy of ``x``, laid out as ``x`` is, whose last byte comes right before a
    page that may not be read (Linux's mprotect): a read past it ends the process."""
    page = mmap.PAGESIZE
    pages = -(-x.nbytes // page) + 1
    memory = mmap.mmap(-1, pages * page)
    keep.append(memory)
    start = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(start + (pages - 1) * page, page, 0) == 0  # PROT_NONE
    flat = np.frombuffer(memory, np.float32, x.size, (pages - 1) * page - x.nbytes)
    copy = flat.reshape(x.shape) if x.flags.c_contiguous else flat.reshape(x.shape[::-1]).T
    copy[...] = x
    return copy


@needs_kernels
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("m, k, n", [(5, 17, 7), (1, 3, 2), (9, 40, 70)])
def test_a_product_reads_and_writes_nothing_past_its_operands(m, k, n, layout):
    """Each operand and ``out`` end where a page that may not be touched begins: the
    blocks past the last row or column, and the vectors of a row's tail, stay out."""
    keep: list = []
    a, b = operands(m, k, n, layout, seed=3)
    got = kernel_product(at_page_end(a, keep), at_page_end(b, keep),
                         at_page_end(np.zeros((m, n), np.float32), keep))
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


@needs_kernels
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_a_product_is_float64s_within_float32s_rounding(m, k, n, layout):
    """... and writes nothing but ``out``: the 32 floats either side of it keep their
    values (a vector of gemm_axpys starts before a row's first column)."""
    a, b = operands(m, k, n, layout)
    fence = np.full(m * n + 64, -7.0, np.float32)
    got = kernel_product(a, b, fence[32:-32].reshape(m, n))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = (k + 2) * 2.0 ** -24 * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert np.all(np.abs(got - exact) <= bound)
    assert np.all(fence[:32] == -7.0) and np.all(fence[-32:] == -7.0)


@needs_kernels
def test_each_elements_sum_has_the_order_host_gemm_c_names():
    """Terms 2^24, 1 and -2^24 (exact sum 1), placed so that each order gives its own
    answer: dots sum k = l (mod 16) in lane l, then lanes l and l + 8 first; axpys
    sum in order, the 1 lost beside 2^24."""
    big = np.float32(2 ** 24)
    ones = np.ones((1, 32), np.float32)
    for at, want in (((0, 16, 8), 0.0),  # 1 beside 2^24 in lane 0, lost: 0
                     ((0, 1, 8), 1.0)):  # lanes 0 and 8 cancel first: 1
        row = np.zeros((1, 32), np.float32)
        row[0, list(at)] = big, 1, -big
        got = kernel_product(ones, row.T, np.empty((1, 1), np.float32))
        assert got[0, 0] == want, at
    rows = np.array([[big, big], [1, 1], [-big, -big]], np.float32)  # rows: axpys
    got = kernel_product(np.ones((1, 3), np.float32), rows, np.empty((1, 2), np.float32))
    assert got.tolist() == [[0.0, 0.0]]


@needs_kernels
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_products_numbers_do_not_depend_on_its_row_blocks_or_addresses(layout):
    """Rows of a product computed alone, and operands moved to every 4-byte
    offset of a cache line, give the same bits (host_threads.py's row blocks,
    and arrays wherever NumPy put them)."""
    m, k, n = 70, 150, 90
    a, b = operands(m, k, n, layout, seed=1)
    whole = kernel_product(a, b, np.empty((m, n), np.float32))
    for rows in (slice(0, 1), slice(3, 11), slice(64, 70)):
        part = kernel_product(a[rows], b, np.empty((rows.stop - rows.start, n), np.float32))
        assert part.tobytes() == whole[rows].tobytes()
    for offset in range(0, 64, 4):
        moved = kernel_product(placed(a, offset), placed(b, 60 - offset),
                               placed(np.empty((m, n), np.float32), offset))
        assert moved.tobytes() == whole.tobytes()


@needs_kernels
def test_a_large_thin_product_is_the_kernels_and_a_small_or_wide_one_numpys():
    a, b = operands(128, 784, 30, "a b^T")
    want = kernel_product(a, b, np.empty((128, 30), np.float32))
    assert product(a, b).tobytes() == want.tobytes()
    wide = np.zeros((128, 800), np.float32)  # rows 800 apart: a view of a wider array
    wide[:, :784] = a
    assert product(wide[:, :784], b).tobytes() == want.tobytes()
    dz = np.random.default_rng(4).standard_normal((128, 30)).astype(np.float32)
    want = kernel_product(dz.T, a, np.empty((30, 784), np.float32))  # a^T b: axpys
    assert product(dz.T, wide[:, :784]).tobytes() == want.tobytes()
    small = a[:32]  # 32 x 784 x 30 multiply-adds: OpenBLAS's small-matrix kernels
    assert 32 * 784 * 30 <= GEMM_WORK
    assert product(small, b).tobytes() == np.matmul(small, b).tobytes()


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """The names of the kernels called, in order: a spy between ``product`` and the
    library (the kernels' numbers may equal OpenBLAS's, so bits cannot tell)."""
    lib, names = host_gemm.kernels(), []
    spy = SimpleNamespace(**{name: (lambda *args, name=name: names.append(name)
                                    or getattr(lib, name)(*args))
                             for name in ("gemm_dots", "gemm_axpys")})
    monkeypatch.setattr(host_gemm, "kernels", lambda: spy)
    return names


@needs_kernels
def test_only_thin_products_go_to_the_kernels(ran):
    """Past GEMM_WORK, a b^T of at most THIN columns and at least THIN terms goes to
    gemm_dots, a^T b of at most THIN rows and at least THIN columns to gemm_axpys;
    one step past either edge, NumPy's."""
    rng = np.random.default_rng(5)

    def rows(r: int, c: int) -> np.ndarray:
        return rng.standard_normal((r, c)).astype(np.float32)

    for x, y, kernel in [(rows(128, 784), rows(THIN, 784).T, "gemm_dots"),
                         (rows(128, 784), rows(THIN + 1, 784).T, None),
                         (rows(1024, THIN), rows(30, THIN).T, "gemm_dots"),
                         (rows(1024, THIN - 1), rows(30, THIN - 1).T, None),
                         (rows(1024, THIN).T, rows(1024, THIN), "gemm_axpys"),
                         (rows(1024, THIN + 1).T, rows(1024, THIN), None),
                         (rows(1024, 30).T, rows(1024, THIN - 1), None),
                         (rows(250, 100), rows(40, 100).T, None)]:  # GEMM_WORK itself
        assert x.shape[0] * x.shape[1] * y.shape[1] >= GEMM_WORK
        del ran[:]
        got = product(x, y)
        assert ran == ([kernel] if kernel else []), (x.shape, y.shape)
        np.testing.assert_allclose(got, x.astype(np.float64) @ y, rtol=1e-4, atol=1e-3)


def test_a_product_the_kernels_do_not_take_is_numpys():
    """float64, operands whose rows and columns are both strided, rows in reverse,
    an ``out`` not C-contiguous, an ``out`` that is an operand: NumPy's, bit for bit."""
    a, b = operands(256, 784, 60, "a b^T")
    for x, y, out in [(a.astype(np.float64), b.astype(np.float64), None),
                      (a[:, ::2], b[::2], None), (a[::-1], b, None),
                      (a, b, np.empty((60, 256), np.float32).T)]:
        want = np.matmul(x, y)
        assert np.array_equal(product(x, y, out), want, equal_nan=True)
    square = np.random.default_rng(2).standard_normal((600, 600)).astype(np.float32)
    want = np.matmul(square, square)
    assert product(square, square, out=square).tobytes() == want.tobytes()


@needs_kernels
def test_the_numpy_backends_large_products_are_the_kernels_while_the_c_is_on(monkeypatch):
    backend = gpunet.get_backend("numpy")
    a, b = operands(512, 784, 30, "a b^T")  # row blocks (host_threads.SPLIT_WORK)
    monkeypatch.setattr(backend, "host_c_on", True)
    on = backend.gemm(a, b)
    assert on.tobytes() == kernel_product(a, b, np.empty((512, 30), np.float32)).tobytes()
    monkeypatch.setattr(backend, "host_c_on", False)
    assert backend.gemm(a, b).tobytes() == backend.products.matmul(a, b).tobytes()


@pytest.mark.parametrize("library", ["no C compiler: cc is not on PATH", "no AVX-512F"])
def test_without_a_compiler_or_avx512_the_products_are_numpys(monkeypatch, library):
    if library == "no AVX-512F":  # host_gemm.c built, on a CPU it does not run on
        library = ctypes.CDLL(None)
        library.gemm_ready = lambda: 0
    monkeypatch.setattr(host_gemm.host_c, "library", lambda: library)
    host_gemm.kernels.cache_clear()
    try:
        assert host_gemm.kernels() is None
        a, b = operands(128, 784, 30, "a b^T")
        assert product(a, b).tobytes() == np.matmul(a, b).tobytes()
    finally:
        monkeypatch.undo()
        host_gemm.kernels.cache_clear()


@pytest.mark.parametrize("shape, dtype", [(1, np.float32), ((3, 5), np.float32),
                                          ((128, 784), np.float32), (23970, np.float64),
                                          ((2, 3, 4), np.int64)])
def test_numpy_backends_empty_starts_on_64_bytes(shape, dtype):
    x = gpunet.get_backend("numpy").empty(shape, dtype)
    assert x.ctypes.data % ALIGNMENT == 0
    assert x.shape == np.empty(shape).shape and x.dtype == dtype and x.flags.c_contiguous
    assert x.flags.writeable


def test_a_models_flat_buffers_start_on_64_bytes():
    model = gpunet.mnist_model("deep", backend=gpunet.get_backend("numpy"))
    params, grads = model.flat()
    assert params.ctypes.data % ALIGNMENT == 0 and grads.ctypes.data % ALIGNMENT == 0
    assert not grads.any()



@needs_kernels
def test_a_large_products_row_blocks_go_where_the_whole_product_goes(ran, monkeypatch):
    """The wide model's weight gradient, 256 x 128 by 128 x 784, comes in row blocks
    of 64, each thin alone but not the whole: NumPy's, all of them; the deep model's
    first product at batch 512, thin: the kernels', every block."""
    backend = gpunet.get_backend("numpy")
    monkeypatch.setattr(backend, "host_c_on", True)
    dz_t, y = operands(256, 128, 784, "a^T b", seed=6)  # dz^T as a view, and y
    backend.gemm(dz_t, y)
    assert ran == []
    x, w = operands(512, 784, 30, "a b^T", seed=7)
    backend.gemm(x, w)
    assert ran == ["gemm_dots"] * 8

"""The host's threads: a product's numbers depend on its shapes, never on the threads
that compute it or the load on the other cores."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import gpunet
from gpunet.backend.host_threads import BLOCK_ROWS, SPLIT_WORK, RowBlockProducts, row_blocks
from gpunet.cli import main


@pytest.fixture(autouse=True)
def _restored_threads():
    with threadpool_limits(limits=None):
        yield


def matrices(m: int, k: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((m, k)).astype(np.float32),
            rng.standard_normal((k, n)).astype(np.float32))


@pytest.mark.parametrize("rows, work, blocks", [
    (128, SPLIT_WORK - 1, [(0, 128)]),                   # too little work to share
    (2 * BLOCK_ROWS - 1, SPLIT_WORK, [(0, 127)]),        # too few rows
    (128, SPLIT_WORK, [(0, 64), (64, 128)]),
    (130, SPLIT_WORK, [(0, 64), (64, 128), (128, 130)]),  # a short last block
])
def test_the_blocks_are_fixed_by_the_shapes(rows, work, blocks):
    assert [(s.start, s.stop) for s in row_blocks(rows, work)] == blocks


@pytest.mark.parametrize("shape", [(128, 784, 256), (256, 128, 784), (1000, 784, 30),
                                   (130, 784, 256)])
def test_every_thread_count_gives_the_same_numbers(shape):
    a, b = matrices(*shape)
    products = RowBlockProducts()
    results = []
    for workers in (1, 2, 3):
        products.use_threads(workers)
        results += [products.matmul(a, b), products.matmul(np.asfortranarray(a), b)]
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])
    np.testing.assert_allclose(results[0], a @ b, rtol=1e-4, atol=1e-3)


def test_a_product_is_written_into_out_and_a_small_one_is_one_call():
    products = RowBlockProducts()
    products.use_threads(2)
    for shape in [(128, 784, 256), (64, 784, 30)]:
        a, b = matrices(*shape)
        out = np.empty((shape[0], shape[2]), np.float32)
        assert products.matmul(a, b, out) is out
        np.testing.assert_array_equal(out, products.matmul(a, b))
    with threadpool_limits(1):
        a, b = matrices(64, 784, 30)
        np.testing.assert_array_equal(products.matmul(a, b), a @ b)


def test_use_threads_gives_the_blas_one_thread_and_the_blocks_the_count():
    products = RowBlockProducts()
    products.use_threads(3)
    assert products.workers == 3
    assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {1}
    assert str(products).startswith("products in row blocks, BLAS 1 ")


def test_a_block_s_error_is_raised_in_the_caller():
    products = RowBlockProducts()
    products.use_threads(2)
    a, b = matrices(128, 784, 256)
    with pytest.raises(ValueError):
        products.matmul(a, b, np.empty((128, 255), np.float32))


def test_training_with_any_thread_count_gives_the_same_weights(tmp_path, fashion_dir):
    """The failure this module exists for: the wide model, whose products are shared,
    trained with 1 and 2 threads (``--threads auto`` may choose either at each epoch)."""
    weights = []
    for threads in ("1", "2"):
        save = tmp_path / f"threads-{threads}.ckpt"
        assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(fashion_dir),
                     "--model", "wide", "--train-subset", "512", "--test-subset", "256",
                     "--epochs", "1", "--threads", threads, "--backend", "numpy", "--quiet",
                     "--save", str(save)]) == 0
        model = gpunet.load_checkpoint(save, "numpy").model
        weights.append([np.array(p) for p in model.params()])
    for one, two in zip(*weights):
        np.testing.assert_array_equal(one, two)

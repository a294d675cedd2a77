"""Shared fixtures: one test body runs on every backend this machine can use."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

import gpunet
from gpunet.backend import cuda_status
from helpers.datasets import make_fake, put
from helpers.paths import DEBIAN_FASHION, SHARED_MNIST


def pytest_collection_modifyitems(config, items):
    status = cuda_status()
    if status.usable:
        return
    skip = pytest.mark.skip(reason=_gpu_skip_reason(status.reason))
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _gpu_skip_reason(why: str) -> str:
    return f"no usable CUDA device: {why}"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Report every GPU skip at this one place, so ``-ra`` says the reason once, with a count."""
    report = (yield).get_result()
    if report.skipped and "gpu" in item.keywords and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
        if reason == _gpu_skip_reason(cuda_status().reason):
            report.longrepr = (__file__, None, reason)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request) -> gpunet.Backend:
    return gpunet.get_backend(request.param)


@pytest.fixture
def numpy_backend() -> gpunet.Backend:
    return gpunet.get_backend("numpy")


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """One BLAS thread in the test process (each xdist worker): the workers and the
    commands the tests start share the cores, and a BLAS thread per core in each would
    wait on the others' (docs/threads.md). Commands under test choose their own."""
    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True)
def _seeded():
    gpunet.seed(1234)


@pytest.fixture
def mnist_test_digits():
    """The real MNIST test digits from ../shared/data/mnist: (images, labels)."""
    from gpunet.data import read_idx
    images = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
    if not images.exists():
        pytest.skip(f"the real MNIST test digits are not in {SHARED_MNIST}")
    return read_idx(images, "images"), read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz", "labels")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """Debian's Fashion-MNIST (session-scoped, so that shared fixtures may need it too)."""
    if not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST is not installed in {DEBIAN_FASHION} "
                    "(apt-get install dataset-fashion-mnist)")
    return DEBIAN_FASHION


@pytest.fixture(scope="session")
def _fashion_one_epoch(fashion_dir, tmp_path_factory) -> Path:
    """``gpunet train`` of the deep model for one epoch on the first 3,000 Fashion-MNIST
    training samples, tested on 500, batch size 64 (test_train_cli's ``small``), saved:
    trained once per session (per xdist worker), read through ``fashion_checkpoint``."""
    from gpunet.cli import main
    ckpt = tmp_path_factory.mktemp("fashion-one-epoch") / "shared.ckpt"
    assert main(["train", "--dataset", "fashion-mnist", "--train-subset", "3000",
                 "--test-subset", "500", "--batch-size", "64", "--epochs", "1",
                 "--save", str(ckpt), "--backend", "numpy", "--quiet"]) == 0
    return ckpt


@pytest.fixture
def fashion_checkpoint(_fashion_one_epoch, tmp_path) -> Path:
    """This test's own copy, tmp_path/a.ckpt, of the one-epoch Fashion-MNIST checkpoint
    (see ``_fashion_one_epoch``): free to resume, overwrite or rewrite."""
    ckpt = tmp_path / "a.ckpt"
    shutil.copyfile(_fashion_one_epoch, ckpt)
    return ckpt


@pytest.fixture
def fake_dir(monkeypatch, tmp_path):
    """A fake 'mnist' (6 training and 4 test images) in its own folder; an empty cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GPUNET_DATA", raising=False)
    fake = make_fake(monkeypatch)
    return fake, put(tmp_path / "data", fake.gz)


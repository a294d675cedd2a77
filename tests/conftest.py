"""Shared fixtures: one test body runs on every backend this machine can use."""
from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.backend import cuda_status


def pytest_collection_modifyitems(config, items):
    status = cuda_status()
    if status.usable:
        return
    skip = pytest.mark.skip(reason=f"no usable CUDA device: {status.reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request) -> gpunet.Backend:
    return gpunet.get_backend(request.param)


@pytest.fixture
def numpy_backend() -> gpunet.Backend:
    return gpunet.get_backend("numpy")


@pytest.fixture(autouse=True)
def _seeded():
    gpunet.seed(1234)


def host(backend: gpunet.Backend, x) -> np.ndarray:
    return backend.to_numpy(x)

"""The fixtures of CupyBackend's tests on the host (``helpers/cupy_on_host.py``):
its kernels built once a process, the backend over them once a module."""
from __future__ import annotations

from typing import Any

import pytest

import gpunet
from helpers.block_kernel_source import build_host_launch
from helpers.cupy_on_host import Run, cupy_backend_on_host, host_run
from helpers.dense_passes import CHAINS


@pytest.fixture(scope="session", params=[(), ("-DHOST_REVERSED",)],
                ids=["host-order", "host-reversed"])
def host_order(request) -> tuple[str, ...]:
    """g++'s flags for the order the host runs a kernel's elements, a grid's blocks
    and a block's threads between barriers: in order, then last first (a kernel
    relying on either fails in the other: helpers/block_kernel_source.py)."""
    return request.param


@pytest.fixture(scope="session")
def run(tmp_path_factory, host_order) -> Run:
    """``host_run``: each kernels.py row as CuPy calls it, on NumPy arrays."""
    return host_run(tmp_path_factory.mktemp("kernels"), host_order)


@pytest.fixture(scope="session")
def block_launch(tmp_path_factory, host_order) -> Run:
    """``launches.launch`` on the host (helpers/block_kernel_source.py), with
    the row chains of CHAINS."""
    return build_host_launch(tmp_path_factory.mktemp("block_kernels"),
                             tuple(stages for stages, _, _ in CHAINS.values()), host_order)


@pytest.fixture(scope="module")
def kernels(run, block_launch) -> Any:
    """gpunet's own CupyBackend over the host's kernels (``cupy_backend_on_host``)."""
    pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[kernels]')")
    with cupy_backend_on_host(run, block_launch) as backend:
        yield backend


@pytest.fixture
def cpu() -> gpunet.Backend:
    return gpunet.get_backend("numpy")

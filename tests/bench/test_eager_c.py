"""``benchmarks.eager_c``: a user's loop through the layers with their
operations in C gives the NumPy backend's numbers bit for bit, the C doing what
it claims, and its entry point runs from the checkout."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gpunet.backend import host_replay
from gpunet.backend.numpy_backend import NumpyBackend
from helpers.paths import ROOT

if isinstance(_reason := host_replay.step_library(), str):
    pytest.skip(f"no host C: {_reason}", allow_module_level=True)

from benchmarks.bench_core import data  # noqa: E402
from benchmarks.eager_c import EagerC, build, one_epoch, same_numbers  # noqa: E402

EAGER_OPERATIONS = ("dropout", "activate_grad", "softmax_cross_entropy", "momentum_update")


@pytest.fixture(scope="module")
def lib():
    return build()


@pytest.mark.parametrize("batch, samples", [(1, 40), (16, 320), (128, 512)])
def test_a_users_loop_with_c_operations_is_the_numpy_backends_bit_for_bit(lib, batch, samples):
    x, y = data(samples)
    assert same_numbers(EagerC(lib), x, y, batch)


def test_a_users_loop_runs_its_operations_in_c(lib, monkeypatch):
    """In a user's loop of the deep model, the NumPy backend's versions of the
    eager operations the C replaces never run."""
    def refused(*args, **kwargs):
        raise AssertionError("the NumPy version of an eager operation ran")

    backend = EagerC(lib)
    for name in EAGER_OPERATIONS:
        monkeypatch.setattr(NumpyBackend, name, refused)
    loss, params = one_epoch(*data(64), 8, backend)
    assert np.isfinite(loss) and np.isfinite(params).all()


def test_eager_c_runs_from_the_repository_root():
    """benchmarks/ is not installed: its entry point runs from the checkout."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.eager_c", "--samples-batch1",
                           "16", "--samples", "64", "--batch-sizes", "1", "16", "--repeats", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[-4:] == ["public", "numpy", "public", "C"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "16"]

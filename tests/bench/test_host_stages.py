"""``benchmarks.host_stages``: gpunet's planned step with its stages in C gives
the NumPy backend's numbers bit for bit, the C doing the stages it claims, and
its entry point runs from the checkout."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from gpunet.backend.numpy_backend import NumpyBackend
from helpers.paths import ROOT

if shutil.which("cc") is None:
    pytest.skip("no C compiler (cc) on PATH to build benchmarks/host_stages.c",
                allow_module_level=True)

from benchmarks.bench_core import data  # noqa: E402
from benchmarks.host_stages import HostStages, build, one_epoch, same_numbers  # noqa: E402

# How often each operation's NumPy version may run in an epoch of several steps:
# the warm-up step's (no state, no classes yet) forwards and output stage.
NUMPY_CALLS = {"dense_forward": 2, "dense_softmax_cross_entropy": 1, "dense_backward": 0,
               "update_and_advance": 0}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return HostStages(build(tmp_path_factory.mktemp("host_stages")))


@pytest.mark.parametrize("batch, samples", [(1, 40), (16, 320), (128, 512)])
def test_an_epoch_with_c_stages_is_the_numpy_backends_bit_for_bit(host, batch, samples):
    x, y = data(samples)
    assert same_numbers(host, x, y, batch)


def test_past_the_warm_up_step_every_stage_runs_in_c(host, monkeypatch):
    """The NumPy backend's versions of the four operations run only in the
    warm-up step (which has no graph state): the epoch's other steps are the C's."""
    calls = dict.fromkeys(NUMPY_CALLS, 0)

    def counted(name):
        numpy_version = getattr(NumpyBackend, name)

        def call(self, *args, **kwargs):
            calls[name] += 1
            return numpy_version(self, *args, **kwargs)
        return call

    for name in NUMPY_CALLS:
        monkeypatch.setattr(NumpyBackend, name, counted(name))
    x, y = data(64)
    loss, params = one_epoch(x, y, 8, host)
    assert np.isfinite(loss) and np.isfinite(params).all()
    assert calls == NUMPY_CALLS


def test_host_stages_runs_from_the_repository_root():
    """benchmarks/ is not installed: its entry point runs from the checkout."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.host_stages", "--samples-batch1",
                           "16", "--samples", "64", "--batch-sizes", "1", "16", "--repeats", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["1", "16"]

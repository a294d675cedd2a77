"""``benchmarks.host_stages``: gpunet's planned step with its stages in C, called
one by one or replayed as bound calls, and a user's loop through the layers with
their operations in C give the NumPy backend's numbers bit for bit, the C doing
what it claims, and its entry point runs from the checkout."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import gpunet
from gpunet.backend.graph_step import STEP_OPERATIONS
from gpunet.backend.numpy_backend import NumpyBackend
from helpers.paths import ROOT

if shutil.which("cc") is None:
    pytest.skip("no C compiler (cc) on PATH to build benchmarks/host_stages.c",
                allow_module_level=True)

from benchmarks.bench_core import data, deep_model  # noqa: E402
from benchmarks.host_stages import (HostReplay, HostStages, build, one_epoch,  # noqa: E402
                                    owning_numpy_arrays, same_numbers)

# How often each operation's NumPy version may run in an epoch of several steps:
# the warm-up step's (no state, no classes yet) forwards and output stage.
NUMPY_CALLS = {"dense_forward": 2, "dense_softmax_cross_entropy": 1, "dense_backward": 0,
               "update_and_advance": 0}


WAYS = [(HostStages, "off"), (HostReplay, "on")]  # each backend with its graph mode
EAGER_OPERATIONS = ("dropout", "activate_grad", "softmax_cross_entropy", "momentum_update")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build(tmp_path_factory.mktemp("host_stages"))


@pytest.mark.parametrize("kind, graph", WAYS)
@pytest.mark.parametrize("batch, samples", [(1, 40), (16, 320), (128, 512)])
def test_an_epoch_with_c_stages_is_the_numpy_backends_bit_for_bit(lib, kind, graph, batch,
                                                                   samples):
    x, y = data(samples)
    assert same_numbers(kind(lib), x, y, batch, graph)


@pytest.mark.parametrize("batch, samples", [(1, 40), (16, 320), (128, 512)])
def test_a_users_loop_with_c_operations_is_the_numpy_backends_bit_for_bit(lib, batch, samples):
    x, y = data(samples)
    assert same_numbers(HostStages(lib), x, y, batch, public=True)


def test_a_users_loop_runs_its_operations_in_c(lib, monkeypatch):
    """In a user's loop of the deep model, the NumPy backend's versions of the
    eager operations the C replaces never run."""
    def refused(*args, **kwargs):
        raise AssertionError("the NumPy version of an eager operation ran")

    backend = HostStages(lib)
    for name in EAGER_OPERATIONS:
        monkeypatch.setattr(NumpyBackend, name, refused)
    loss, params = one_epoch(*data(64), 8, backend, public=True)
    assert np.isfinite(loss) and np.isfinite(params).all()


@pytest.mark.parametrize("kind, graph", WAYS)
def test_past_the_warm_up_step_every_stage_runs_in_c(lib, kind, graph, monkeypatch):
    """The NumPy backend's versions of the four operations run only in the
    warm-up step (which has no graph state): the epoch's other steps, run one by
    one or replayed, are the C's."""
    calls = dict.fromkeys(NUMPY_CALLS, 0)

    def counted(name):
        numpy_version = getattr(NumpyBackend, name)

        def call(self, *args, **kwargs):
            calls[name] += 1
            return numpy_version(self, *args, **kwargs)
        return call

    backend = kind(lib)
    for name in NUMPY_CALLS:
        monkeypatch.setattr(NumpyBackend, name, counted(name))
    x, y = data(64)
    loss, params = one_epoch(x, y, 8, backend, graph)
    assert np.isfinite(loss) and np.isfinite(params).all()
    assert calls == NUMPY_CALLS


def test_a_replayed_epoch_makes_none_of_the_backends_operations(lib, monkeypatch):
    """Once captured, a step is its bound calls alone: a second epoch of the same
    model replays every step without one backend operation."""
    backend, x, y = HostReplay(lib), *data(64)
    with owning_numpy_arrays(backend):
        model = deep_model()
        loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
        gpunet.train_epoch(model, loss, optimizer, x, y, 8, graph="on")

        def refused(*args, **kwargs):
            raise AssertionError("a backend operation ran in a replayed epoch")

        for name in STEP_OPERATIONS:
            monkeypatch.setattr(HostReplay, name, refused)
        assert np.isfinite(float(gpunet.train_epoch(model, loss, optimizer, x, y, 8,
                                                    graph="on")))


def test_host_stages_runs_from_the_repository_root():
    """benchmarks/ is not installed: its entry point runs from the checkout."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.host_stages", "--samples-batch1",
                           "16", "--samples", "64", "--batch-sizes", "1", "16", "--repeats", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[-2:] == ["C", "operations"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "16"]

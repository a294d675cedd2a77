"""``benchmarks.replay_activations``: the deep model with each activation in
place of tanh, and its entry point, run from the checkout."""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.paths import ROOT

from benchmarks.replay_activations import ACTIVATIONS, model_with


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_tanh_becomes_the_activation(activation):
    kinds = [type(layer).__name__ for layer in model_with(activation).layers]
    assert kinds == ["Linear", "Dropout", activation, "Linear", "Dropout", activation, "Linear"]


def test_replay_activations_runs_from_the_repository_root():
    done = subprocess.run([sys.executable, "-m", "benchmarks.replay_activations",
                           "--samples-batch1", "16", "--samples", "64", "--batch-sizes", "1", "16",
                           "--repeats", "1", "--activations", "Sigmoid", "Relu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line.split()[:2] for line in done.stdout.splitlines()[1:]] == [
        ["Sigmoid", "1"], ["Relu", "1"], ["Sigmoid", "16"], ["Relu", "16"]]

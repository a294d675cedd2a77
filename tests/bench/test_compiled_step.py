"""``benchmarks.compiled_step``: the compiled step computes the plain script's
maths with gpunet's dropout draws, and its entry point runs from the checkout."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import gpunet
from helpers.paths import ROOT

if shutil.which("cc") is None:
    pytest.skip("no C compiler (cc) on PATH to build benchmarks/compiled_step.c",
                allow_module_level=True)

from benchmarks import plain_numpy  # noqa: E402
from benchmarks.bench_core import data  # noqa: E402
from benchmarks.compiled_step import VARIANTS, CompiledModel, build  # noqa: E402


def reference_step(params, x, classes, m1, m2):
    """The plain script's step in float64 with these masks: losses, hits, gradients."""
    w1, b1, w2, b2, w3, b3 = (p.astype(np.float64) for p in params)
    x, n = x.astype(np.float64), len(x)
    a1 = np.tanh((x @ w1.T + b1) * m1)
    a2 = np.tanh((a1 @ w2.T + b2) * m2)
    z = a2 @ w3.T + b3
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    losses = -log_p[np.arange(n), classes]
    g3 = (np.exp(log_p) - np.eye(10)[classes]) / n
    g2 = (g3 @ w3) * (1 - a2 * a2) * m2
    g1 = (g2 @ w2) * (1 - a1 * a1) * m1
    grads = [g1.T @ x, g1.sum(axis=0), g2.T @ a1, g2.sum(axis=0), g3.T @ a2, g3.sum(axis=0)]
    return losses, z.argmax(axis=1) == classes, np.concatenate([g.ravel() for g in grads])


@pytest.mark.parametrize("batch", [1, 4])
def test_a_compiled_step_is_the_plain_scripts_step_with_gpunets_draws(batch):
    model = CompiledModel(build(VARIANTS["tanh"]), batch, np.random.default_rng(3))
    x, y = data(batch)
    classes = y.argmax(axis=1).astype(np.int64)
    losses, hits = np.empty(batch, np.float32), np.empty(batch, np.uint8)
    before = [p.copy() for p in model.params]
    model.step(x, classes.ctypes.data, losses.ctypes.data, hits.ctypes.data)

    draws = gpunet.get_backend("numpy")._uniform24(0, batch * 40, key=model.key)
    kept = (draws >= np.float32(plain_numpy.P)).astype(np.float32)
    np.testing.assert_array_equal(model.m1.ravel(), kept[:batch * 30])
    np.testing.assert_array_equal(model.m2.ravel(), kept[batch * 30:])
    assert 0 < kept.sum() < kept.size  # some dropped, some kept

    ref_losses, ref_hits, ref_grads = reference_step(before, x, classes, model.m1, model.m2)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    np.testing.assert_array_equal(hits, ref_hits)
    np.testing.assert_allclose(model.grad_flat, ref_grads, rtol=1e-4, atol=1e-7)
    velocity = (1 - plain_numpy.MO) * ref_grads  # from zero, the first step's
    np.testing.assert_allclose(model.velocity, velocity, rtol=1e-4, atol=1e-9)
    after = np.concatenate([p.ravel() for p in before]) - plain_numpy.LR * model.velocity
    np.testing.assert_allclose(model.flat, after, rtol=1e-6)


def test_compiled_step_runs_from_the_repository_root():
    """benchmarks/ is not installed: its entry point runs from the checkout."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.compiled_step", "--samples-batch1",
                           "16", "--samples", "64", "--batch-sizes", "1", "16", "--repeats", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()[1:]
    assert [(line[:14].strip(), line.split()[-6]) for line in lines] == [
        ("tanh", "1"), ("no activation", "1"), ("tanh", "16"), ("no activation", "16")]

"""Dropout keeps an element whose uniform draw u equals p (u >= p), on every
path: the eager layer, the planned step's fused stage, and a graph step's
(counters read from its state)."""
from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.backend.graph_step import graph_state
from helpers.arrays import host


def draws_and_p(backend):
    """The first 64 draws of key 5, and p equal to one of them (not the smallest nor largest)."""
    backend.restart(5)
    u = host(backend, backend.uniform((2, 32), np.float32))
    p = float(np.sort(u.ravel())[20])
    assert (u == p).sum() >= 1 and 0 < p < 1
    backend.restart(5)
    return u, p


def test_the_eager_layer_keeps_a_draw_equal_to_p(backend):
    u, p = draws_and_p(backend)
    out = host(backend, gpunet.Dropout(p).forward(backend.asarray(np.ones((2, 32), np.float32))))
    np.testing.assert_array_equal(out, (u >= p).astype(np.float32))


@pytest.mark.parametrize("from_state", [False, True])
def test_the_fused_stage_keeps_a_draw_equal_to_p(backend, from_state):
    u, p = draws_and_p(backend)
    xp = backend.xp
    z, mask = xp.zeros((2, 32), np.float32), xp.empty((2, 32), np.float32)
    state = (xp.asarray(graph_state(0, 0, backend.key)), 0) if from_state else None
    y = backend.dense_forward(z, xp.ones(32, np.float32), z, dropout=(p, 1.0), mask=mask,
                              state=state)
    np.testing.assert_array_equal(host(backend, y), (u >= p).astype(np.float32))


@pytest.mark.parametrize("fused", [False, True])
def test_a_float64_dropout_compares_its_draws_in_float64(backend, fused):
    """p the next float64 above a draw u (float32(p) == u): u < p, dropped."""
    u, p = draws_and_p(backend)
    p = float(np.nextafter(p, 1.0))
    assert (u.astype(np.float64) == np.float32(p)).any()
    xp, ones = backend.xp, np.ones((2, 32))
    if fused:
        z = xp.zeros((2, 32), np.float64)
        out = backend.dense_forward(z, xp.ones(32, np.float64), z, dropout=(p, 1.0),
                                    mask=xp.empty((2, 32), np.float64))
    else:
        out = gpunet.Dropout(p).forward(backend.asarray(ones, np.float64))
    np.testing.assert_array_equal(host(backend, out), (u.astype(np.float64) >= p) * ones)

"""``benchmarks.replay_calls``: each call of the host replay's step timed in an epoch,
beside the whole step and the plain script's."""
from __future__ import annotations

import pytest

from benchmarks.replay_calls import epoch_calls
from gpunet.backend import host_c


def test_each_replayed_call_is_timed_with_the_whole_step_and_the_plain_ones():
    if isinstance(host_c.library(), str):
        pytest.skip(f"no host replay here: {host_c.library()}")
    calls, whole, plain = epoch_calls(samples=64, batch=16, repeats=1)
    names = [name.split()[1] for name in calls]
    assert names[0] == "with_rows" and names[-1] == "momentum_update_and_advance"
    assert [int(name.split()[0]) for name in calls] == list(range(len(calls)))
    assert all(microseconds > 0 for microseconds in (*calls.values(), whole, plain))

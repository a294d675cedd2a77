"""``benchmarks.step_operations``: every operation of the planned step timed both
ways, and the backend left as it was."""
from __future__ import annotations

import gpunet
from benchmarks.step_operations import operation_times
from gpunet.backend.graph_step import STEP_OPERATIONS


def test_each_operation_is_timed_in_an_epoch_and_alone():
    in_epoch, alone = operation_times(batch=16, repeats=1, samples=64)
    assert set(in_epoch) == set(alone) == set(STEP_OPERATIONS)
    assert all(seconds > 0 for seconds in (*in_epoch.values(), *alone.values()))
    backend = gpunet.get_backend("numpy")
    assert not any(name in vars(backend) for name in STEP_OPERATIONS)  # no timing wrapper left

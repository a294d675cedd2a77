"""The host's Python work per planned step (issue #23, item 6): the deep
model's one-process step on CupyBackend over a stand-in cupy whose kernels and
products do nothing (``benchmarks/step_host_work.py``) makes at most 60 Python calls."""
from benchmarks.step_host_work import count_calls, owning_numpy_arrays, planned_step, stub_backend
from helpers.mutation import counts_python_calls

MOST_CALLS = 60


@counts_python_calls
def test_a_planned_step_makes_at_most_60_python_calls():
    backend = stub_backend()
    with owning_numpy_arrays(backend):
        model, step, rows = planned_step(backend)
        counts = count_calls(step, rows)
    assert step.path == "planned" and model is step.plan.model()
    assert counts["call"] <= MOST_CALLS, counts

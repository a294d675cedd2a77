"""The host's Python work per planned step (issue #23, item 6): the deep
model's step on CupyBackend over a stand-in cupy whose kernels and products do
nothing (``benchmarks/step_host_work.py``) makes at most 60 Python calls."""
from benchmarks.step_host_work import count_calls, owning_numpy_arrays, planned_step, stub_backend

MOST_CALLS = 60


def test_a_planned_step_makes_at_most_60_python_calls():
    backend = stub_backend()
    with owning_numpy_arrays(backend):
        model, plan, args = planned_step(backend)
        plan.run(*args)  # the first step makes the optimizer's state
        counts = count_calls(plan, args)
    assert model is plan.model()
    assert counts["call"] <= MOST_CALLS, counts

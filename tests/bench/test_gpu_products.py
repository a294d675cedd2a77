"""benchmarks/gpu_products.py times the products a planned step makes: the same
operands' shapes and transposes, in the step's order, for each preset it takes."""
from __future__ import annotations

import numpy as np
import pytest

import gpunet
from benchmarks.gpu_products import products
from gpunet.backend.graph_step import StateRows, record_calls
from gpunet.bench.trainers import mnist_like
from gpunet.planning.graph import StepGraph
from gpunet.planning.step import plan_step
from helpers.models import model_of

BATCH = 16


@pytest.mark.parametrize("name", ["deep", "wide"])
def test_the_products_timed_are_the_planned_steps(numpy_backend, name):
    model = model_of(name, numpy_backend)
    gpunet.set_train(model, True)
    plan = plan_step(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.5, 0.9),
                     numpy_backend, BATCH)
    graph = StepGraph(plan, ("stand-in",))
    x, labels = mnist_like(2 * BATCH)
    graph.start_epoch(x, gpunet.one_hot_encode(labels, backend=numpy_backend)
                      .astype(np.float32), None)
    graph.step(slice(0, BATCH))  # the warm-up through the plan makes the optimizer's state

    def shape(operand):
        return (operand.buffer if type(operand) is StateRows else operand).shape
    transposed = ("gemm_dense_forward", "gemm_dense_softmax_cross_entropy")  # their W
    made = [(shape(args[0]), shape(args[1]), kwargs.get("trans_a", False),
             kwargs.get("trans_b", operation.__name__ in transposed))
            for operation, args, kwargs in record_calls(numpy_backend, graph.record)
            if operation.__name__.startswith("gemm")]
    assert made == list(products(name, BATCH).values())


def test_the_slices_table_times_each_count_and_marks_the_fastest(monkeypatch, capsys):
    """``--slices``: each product with 1, 2, 4, 8 and 16 slices (the launches
    say so), the fastest starred, and the count ``slices`` picks last."""
    import sys
    import types

    import benchmarks.gpu_products as bench
    from gpunet.backend import block_kernels
    stream = types.SimpleNamespace(synchronize=lambda: None)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(
        asarray=np.asarray, empty=np.empty,
        cuda=types.SimpleNamespace(get_current_stream=lambda: stream)))
    launched = []
    monkeypatch.setattr(block_kernels.launches, "launch",
                        lambda name, dtype, grid, block, args, bound: launched.append(block[2]))
    fastest = {1: 5.0, 2: 4.0, 4: 3.0, 8: 1.0, 16: 2.0}
    monkeypatch.setattr(bench, "device_us", lambda run, synchronize: (
        run(), fastest[launched[-1]])[1])
    bench.slices_table(["deep"], [BATCH])
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert launched == [1, 2, 4, 8, 16] * len(products("deep", BATCH))
    for row, (a_shape, b_shape, trans_a, trans_b) in zip(rows, products("deep", BATCH).values()):
        m, n = a_shape[1 if trans_a else 0], b_shape[0 if trans_b else 1]
        picked = block_kernels.slices(a_shape[0 if trans_a else 1], -(-m // 8) * -(-n // 8))
        assert row.split()[-6:] == ["5.00", "4.00", "3.00", "1.00*", "2.00", str(picked)]

"""The operations of a graph step, counted with the NumPy stand-in. On a device
each is one kernel of the CUDA graph: a product one tiled GEMM kernel, or one
cuBLAS call (plus its split-K sum where cuBLAS splits, and, reading the batch's
rows, the copy of the rows first). On an H200 (2026-12-04) the graph's kernels ran
back to back, 0.1 µs apart, the shortest 1.3 µs: what a step costs is its
kernels' work, not their number (docs/gpu-cost-model.md)."""
from __future__ import annotations

import numpy as np

import gpunet
from gpunet.backend.graph_step import record_calls
from gpunet.bench.trainers import mnist_like
from gpunet.planning.graph import StepGraph
from gpunet.planning.step import plan_step
from helpers.models import model_of

BATCH = 128
# The deep model's step (784 -> 30 -> 10 -> 10, dropout and tanh twice), as
# ``dense_passes`` makes it from its parts: per stage but the last its product with
# its forward (one kernel when tiled), the first reading the batch's rows; the last
# stage's product with the loss, which also places each sample's loss and hit and
# sums the bias gradient (one kernel when the product is tiled and short); per
# stage but the first, last first, its input gradient's product with the backward
# of the stage below (when tiled, one kernel giving that stage's dz, and the column
# sums of its bias gradient: two); then per stage, last first, its weight
# gradient's product, the first reading the batch's rows; one update of the flat
# parameters that also advances the state. 9 operations; on a device 11 kernels
# apart, 12 captured (the output stage's column sums aside); where the stages past
# the first are narrow, they and the loss are one kernel row by row, with 3 column sums.
DEEP_STEP = (["gemm_dense_forward"] * 2 + ["gemm_dense_softmax_cross_entropy"]
             + ["gemm_dense_backward"] * 2 + ["gemm"] * 3 + ["update_and_advance"])


def test_the_deep_models_graph_step_is_these_9_operations(numpy_backend):
    model = model_of("deep", numpy_backend)
    gpunet.set_train(model, True)
    plan = plan_step(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.5, 0.9),
                     numpy_backend, BATCH)
    graph = StepGraph(plan, ("stand-in",))
    x, labels = mnist_like(2 * BATCH)
    y = gpunet.one_hot_encode(labels, backend=numpy_backend).astype(np.float32)
    graph.start_epoch(x, y, None)
    graph.step(slice(0, BATCH))  # the warm-up through the plan makes the optimizer's state
    calls = record_calls(numpy_backend, graph.record)
    operations = [operation.__name__ for operation, _, _ in calls]
    assert operations == DEEP_STEP and len(operations) == 9
    # aside: the upper stages' weight gradients, which nothing reads before the update
    aside = [i for i, (_, _, kwargs) in enumerate(calls) if kwargs.get("aside")]
    assert aside == [5, 6]
    assert all(calls[i][2]["out"] is stage.linear.w_grad
               for i, stage in zip(aside, plan.stages[::-1], strict=False))

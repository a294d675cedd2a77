"""CupyBackend's operations of a graph step (``cupy_graph_step.py``), run on the
host (``helpers/cupy_on_host.py``): a StepPlan's recorded deep step (its kernels,
the numbers of its parts), reading the next rows ahead, a bound step's replay,
and the work a capture forks aside and joins before the update.
"""
from __future__ import annotations

import shutil
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import gpunet
from gpunet.backend.graph_step import StateRows, graph_state
from gpunet.backend.side_stream import Branches
from helpers.block_kernel_source import lines_of, prefetched
from helpers.capture_graph import capture_graph, schedule
from helpers.cupy_on_host import (EVENTS, LAUNCHED, STREAMS, NumpyCublas, capturing,
                                  check_product, draw, logged_branches, patch_cupy)
from helpers.races import unordered

if shutil.which("g++") is None:
    pytest.skip("g++ is not on PATH, so the kernels cannot be compiled for the host "
                "(apt-get install g++)", allow_module_level=True)

def recorded_deep_step(kernels: Any, cpu: gpunet.Backend, chained: bool, way: str = "bound",
                       side: Branches | None = None) -> tuple[list[str], list[np.ndarray], Any]:
    """The deep model's graph step at batch 16, warmed up on NumPy, then
    recorded once on ``kernels`` (the row chain, or with ``chained`` False its
    parts) ``way``: "bound" (as ``bind`` records it), "eager" (as ``run_step``
    does, before a capture) or "captured" (as ``capture`` does, with branches
    ``side``): the launches, the parameters, velocity, losses and hits after,
    and the StepGraph."""
    from gpunet.bench.trainers import mnist_like
    from gpunet.planning.graph import StepGraph
    from gpunet.planning.step import plan_step
    from helpers.models import model_of
    gpunet.seed(0)
    model = model_of("deep", cpu)
    gpunet.set_train(model, True)
    optimizer = gpunet.Momentum(0.5, 0.9)
    plan = plan_step(model, gpunet.SoftmaxCrossEntropy(), optimizer, cpu, 16)
    graph = StepGraph(plan, ("stand-in",))
    x, labels = mnist_like(48)  # a warm-up step, the recorded one, and the rows after
    graph.start_epoch(x, gpunet.one_hot_encode(labels, backend=cpu).astype(np.float32), None)
    graph.step(slice(0, 16))  # the warm-up through the plan makes the optimizer's state
    graph._write(plan.rates(), cpu.drawn, cpu.key)  # the rates, as the next step puts them
    module = sys.modules[type(kernels).__module__]
    del LAUNCHED[:]
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(plan, "backend", kernels)
        patch.setattr(graph, "backend", kernels)
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        patch_cupy(patch, "captured_cublas", lambda: NumpyCublas())
        patch.setattr(kernels, "side", side if way == "captured" else None, raising=False)
        patch.setattr(kernels, "bound", [] if way == "bound" else None, raising=False)
        patch.setattr(module.cupy, "cuda", SimpleNamespace(get_current_stream=lambda: None),
                      raising=False)
        if not chained:
            patch.setattr(module.CupyBackend, "_row_chain", lambda *args: False)
        graph.record()
    return (list(LAUNCHED), [plan.flat.pair[0], *optimizer.state(), graph.losses, graph.hits],
            graph)


def test_a_recorded_deep_step_is_9_kernels_with_its_parts_numbers(kernels, cpu):
    """A StepPlan's recorded deep step on CupyBackend: the first stage's fused
    product, the row chain, 3 column sums, 3 weight gradients, the update (9
    kernels, where its parts are 11); the parameters, velocity, losses and hits
    of its parts, bit for bit."""
    launched, chained, _ = recorded_deep_step(kernels, cpu, True)
    parts, apart, _ = recorded_deep_step(kernels, cpu, False)
    assert launched == ["gemm_dense_forward_tanh_dropout_from_state",
                        "dense_rows_tanh_dropout__tanh_dropout", *["dense_backward_identity"] * 3,
                        "gemm", "gemm", "gemm", "grid_momentum_update_and_advance"]
    assert len(parts) == 11
    for got, expected in zip(chained, apart, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("chained", [True, False], ids=["row chain", "parts"])
def test_a_recorded_deep_step_reads_the_next_rows_ahead_unless_bound(kernels, cpu,
                                                                     block_launch, chained):
    """A recorded deep step asks L2 for the lines of the next step's rows of the
    epoch's inputs and targets, by one kernel after its loss: captured, forked
    onto the ahead branch and joined before the update (10 kernels with the row
    chain, 13 with its parts); run eagerly, on the current stream (so a capture
    after finds it built). Bound, it asks for nothing. The numbers are the same,
    bit for bit."""
    prefetched(block_launch)  # what earlier tests asked, forgotten
    bound_launched, bound, graph = recorded_deep_step(kernels, cpu, chained)
    assert "read_ahead" not in bound_launched and prefetched(block_launch) == []
    eager_launched, eager, graph = recorded_deep_step(kernels, cpu, chained, "eager")
    assert [name for name in eager_launched if name != "read_ahead"] == bound_launched
    assert eager_launched.count("read_ahead") == 1
    assert sorted(prefetched(block_launch)) == sorted(
        line for data in (graph.x, graph.y) for line in lines_of(data[32:48]))
    side, log = logged_branches(kernels.SIDE_STREAMS)
    launched, captured, graph = recorded_deep_step(kernels, cpu, chained, "captured", side)
    loss = next(i for i, name in enumerate(launched) if name.startswith("dense_rows")
                or "softmax" in name)
    # after the loss: the row chain's, or the output stage's and its column sums (forked aside)
    assert launched.count("read_ahead") == 1
    assert launched.index("read_ahead") == loss + (1 if chained else 2)
    assert len(launched) == (10 if chained else 13)
    assert [entry for entry in log if entry[1] == "ahead"] == [
        ("fork", "ahead"), ("back", "ahead", ["read_ahead"]), ("join", "ahead")]
    assert log.index(("join", "ahead")) > log.index(("back", "ahead", ["read_ahead"]))
    assert sorted(prefetched(block_launch)) == sorted(
        line for data in (graph.x, graph.y) for line in lines_of(data[32:48]))
    for numbers in (eager, captured):
        for got, expected in zip(numbers, bound, strict=True):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("chained", [True, False], ids=["row chain", "parts"])
def test_a_captured_deep_steps_kernels_touch_nothing_the_graph_leaves_unordered(kernels, cpu,
                                                                               chained):
    """Captured, the deep step's kernels run on the capture's stream and six
    branches (each product aside, each column sum and reading ahead on a side
    stream of its own); any two that touch the same bytes, one writing them, are
    ordered by the graph's edges (helpers/races.py), so a GPU runs them as the
    host does. Without any branch's fork, or its join, they are not (read_ahead's
    fork orders nothing: it only reads, what nothing before it writes)."""
    side, _ = logged_branches(kernels.SIDE_STREAMS)
    del EVENTS[:]
    recorded_deep_step(kernels, cpu, chained, "captured", side)
    events = list(EVENTS)
    assert {event[1] for event in events if event[0] == "launch"} == {
        "main", "products", "products 2", "sums", "sums 2", "sums 3", "ahead"}
    assert unordered(events) == []
    edges = [event for event in events if event[0] in ("fork", "join")]
    assert len(edges) == 12
    for dropped in edges:
        if dropped != ("fork", "ahead"):  # reads only
            assert unordered([event for event in events if event != dropped]) != [], dropped


# Each kernel's device time (µs) in the captured deep step at batch 128 on an H200, as
# docs/gpu-cost-model.md puts it (the rows of the row chain and of reading ahead; fdd0812's
# measured kernels for the products, column sums and update), by the kind of stream it
# runs on and its name; and the time between a replayed graph's kernels (measured there).
COST_MODEL_TIMES = {("main", "gemm_dense_forward_tanh_dropout_from_state"): 7.6,
                    ("main", "dense_rows_tanh_dropout__tanh_dropout"): 3.2,
                    ("main", "gemm"): 4.0,  # dz1^T x
                    ("main", "grid_momentum_update_and_advance"): 2.0,
                    ("products", "gemm"): 2.5,  # dz3^T y2, dz2^T y1
                    ("sums", "dense_backward_identity"): 1.5,
                    ("ahead", "read_ahead"): 1.8}
NODE_GAP = 0.1


@pytest.mark.parametrize("streams, span, waited", [
    (None, 17.1, "main"), ((1, 1, 1), 18.2, "products")],
    ids=["a side stream each", "one a kind"])
def test_the_cost_model_puts_a_captured_deep_step_at_17_us_its_chain(kernels, cpu, streams,
                                                                    span, waited):
    """The captured deep step's graph (helpers/capture_graph.py) run with the cost
    model's kernel times: 17.1 µs a step, its chain on the capture's stream, each
    product and column sum aside on a side stream of its own
    (CupyBackend.SIDE_STREAMS) ending before dz1^T x there. With one side stream a
    kind, 18.2: the update waits 1.1 µs for the two products, one after the other
    (2.5 + 2.5 µs after the row chain, against dz1^T x's 4.0). Its kernels one
    after another would take 29.0. The same schedule as a profiler's trace of
    three replays gives the same timeline (benchmarks/step_timeline.py)."""
    from benchmarks.step_timeline import kernels as kernels_of
    from benchmarks.step_timeline import timeline
    side, _ = logged_branches(streams or kernels.SIDE_STREAMS)
    del EVENTS[:]
    recorded_deep_step(kernels, cpu, True, "captured", side)
    launches, after = capture_graph(list(EVENTS))
    times = schedule(launches, after,
                     lambda launch: COST_MODEL_TIMES[launch.stream.split()[0], launch.name],
                     NODE_GAP)
    assert max(end for _, end in times) == pytest.approx(span)
    chain = [i for i, launch in enumerate(launches) if launch.stream == "main"]
    assert sum(times[i][1] - times[i][0] for i in chain) + NODE_GAP * (len(chain) - 1
                                                                        ) == pytest.approx(17.1)
    alone = sum(end - start for start, end in times) + NODE_GAP * (len(times) - 1)
    assert alone == pytest.approx(29.0)
    update = len(launches) - 1
    assert launches[update].name == "grid_momentum_update_and_advance"
    assert launches[max(after[update], key=lambda i: times[i][1])].stream == waited
    tids = {name: 10 + i for i, name in enumerate(sorted({launch.stream for launch in launches}))}
    trace = [{"cat": "kernel", "name": launch.name, "tid": tids[launch.stream],
              "ts": 100.0 * replay + start, "dur": end - start, "args": {"correlation": replay}}
             for replay in range(3) for launch, (start, end) in zip(launches, times)]
    found = timeline(kernels_of({"traceEvents": trace}))
    assert (found.steps, found.span) == (3, pytest.approx(span))
    expected = sorted((launch.name, round(start, 6)) for launch, (start, _) in zip(launches, times))
    assert sorted((row.name, round(row.start, 6)) for row in found.rows) == expected


@pytest.mark.parametrize("given", ["as a step gives them", "no graph step's rows",
                                   "targets of another dtype", "targets of one dimension",
                                   "targets of other rows", "targets not contiguous"])
def test_read_ahead_asks_for_nothing_it_would_read_wrong(kernels, block_launch, given):
    """Capturing, read_ahead takes a graph step's rows and the epoch's targets as a
    step gives them (C-contiguous, two dimensions, the rows' dtype and number);
    given anything else, a hint it cannot give right, it launches nothing."""
    data, targets = np.zeros((40, 12), np.float32), np.zeros((40, 3), np.float32)
    x = StateRows(data, graph_state(0, 0, 0), 8, np.empty((8, 12), np.float32))
    x, targets = {"no graph step's rows": (data[:8], targets),
                  "targets of another dtype": (x, targets.astype(np.float64)),
                  "targets of one dimension": (x, targets[:, 0].copy()),
                  "targets of other rows": (x, targets[:39]),
                  "targets not contiguous": (x, np.zeros((40, 6), np.float32)[:, ::2]),
                  }.get(given, (x, targets))
    side, log = logged_branches(kernels.SIDE_STREAMS)
    prefetched(block_launch)  # what earlier tests asked, forgotten
    with capturing(kernels, side):
        kernels.read_ahead(x, targets)
    asked = given == "as a step gives them"
    assert LAUNCHED == ["read_ahead"] * asked
    assert log == [("fork", "ahead"), ("back", "ahead", ["read_ahead"])] * asked
    assert sorted(prefetched(block_launch)) == (
        sorted(lines_of(data[8:16]) + lines_of(targets[8:16])) if asked else [])


@pytest.mark.parametrize("with_cublas", [True, False], ids=["a cuBLAS product", "no cuBLAS"])
def test_a_bound_step_replays_its_launches_on_the_arrays_it_bound(kernels, with_cublas):
    """``bind`` runs a step as ``run_step`` does, binding each launch and
    libcublas call once (a tiled product with its forward, a cuBLAS product, a
    grid kernel, a block kernel, the update); its replay makes them again, in
    order, on the current stream and the arrays as they are then: the numbers
    ``run_step`` gives, with no Python per kernel; the cuBLAS handle readied
    for the stream only where there is a libcublas call."""
    module = sys.modules[type(kernels).__module__]
    x, w, tall = (draw(shape, np.float32, seed=seed)
                  for shape, seed in (((5, 4), 30), ((3, 4), 31), ((300, 4), 32)))
    z, dz, square = np.empty((5, 3), np.float32), np.empty((5, 3), np.float32), draw(
        (4, 4), np.float32, seed=35)
    bias, db, param = draw(3, np.float32, seed=33), np.empty(3, np.float32), draw(16, np.float32,
                                                                                 seed=34)
    state, rates, delta = graph_state(0, 0, 0), np.array([0.5], np.float32), graph_state(1, 2, 3)

    def step() -> None:
        kernels.gemm_dense_forward(x, w, z, bias, activation="tanh")  # a short sum: tiled
        if with_cublas:
            kernels.gemm(tall, tall, square, trans_a=True)  # 300 terms: cuBLAS
        kernels.dense_forward(z, bias, z, activation="relu")
        kernels.dense_backward(z, z, dz, db, activation="tanh")
        kernels.update_and_advance(param, square.reshape(16), None, rates, None, state, delta)

    cublas, prepared = NumpyCublas(), []
    with pytest.MonkeyPatch.context() as patch:
        patch_cupy(patch, "captured_cublas", lambda: cublas)
        patch.setattr(cublas, "prepare", prepared.append, raising=False)
        current = SimpleNamespace(ptr=7)
        patch.setattr(module.cupy, "cuda", SimpleNamespace(get_current_stream=lambda: current),
                      raising=False)
        replay = kernels.bind(step)
        assert kernels.bound is None and kernels.captured_gemm is None
        assert len(cublas.operands) == with_cublas and list(state) == [1, 2, 3]
        x += 1.0
        tall *= 2.0
        before = (param.copy(), state.copy())
        del STREAMS[:]
        replay()
        replayed = (param.copy(), state.copy(), z.copy(), dz.copy(), db.copy())
        assert STREAMS == [7] * 4  # each kernel launch bound, on the current stream
        param[...], state[...] = before
        kernels.run_step(step)
    assert len(cublas.operands) == 2 * with_cublas
    assert prepared == [current] * (2 + with_cublas)  # bind's and run_step's; the replay's
    assert list(replayed[1]) == [2, 4, 6]
    for got, expected in zip(replayed, (param, state, z, dz, db), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_a_captured_product_aside_forks_onto_the_side_stream_until_the_update(kernels):
    """Capturing (``side`` set), a tiled product marked aside runs forked onto the
    products' side stream, a cuBLAS one on the capture's (the handle's), and the
    update joins both branches first; not capturing, aside changes nothing."""
    module = sys.modules[type(kernels).__module__]
    a, b, long_a = (draw(shape, np.float32, seed=seed)
                    for shape, seed in (((5, 4), 40), ((4, 3), 41), ((300, 5), 42)))
    param, state = np.zeros(3, np.float32), graph_state(0, 0, 0)
    branches, logged = logged_branches(kernels.SIDE_STREAMS)
    for side in (branches, None):
        cublas = NumpyCublas()
        del LAUNCHED[:]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
            patch.setattr(kernels, "side", side, raising=False)
            patch_cupy(patch, "captured_cublas", lambda: cublas)
            patch.setattr(module.cupy, "cuda", SimpleNamespace(get_current_stream=lambda: None),
                          raising=False)
            short = kernels.gemm(a, b, np.empty((5, 3), np.float32), aside=True)
            log = list(logged)
            long = kernels.gemm(long_a, long_a, np.empty((5, 5), np.float32), trans_a=True,
                                aside=True)
            assert logged == log  # cuBLAS's: not forked
            kernels.update_and_advance(param, np.ones(3, np.float32), None,
                                       np.ones(1, np.float32), None, state, graph_state(1, 1, 1))
        check_product(short, a, b)
        check_product(long, long_a.T, long_a)
        assert len(cublas.operands) == 1
    assert logged == [("fork", "products"), ("back", "products", ["gemm"]),
                      ("join", "products")]  # the branches given nothing: not joined

"""The planned step: the eager step's numbers bit for bit, in 14 backend calls
for the deep model, on buffers allocated once; other models train eagerly."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import gpunet
from gpunet import planning
from gpunet.train import step as train_step
from gpunet.bench.trainers import mnist_like
from gpunet.train import EpochMetrics
from helpers.models import model_of


def train(backend, name, batch_size, *, planned, optimizer=None, dtype=None, epochs=2,
          smoothed=False):
    """Parameters and each sample's loss and hit after ``epochs`` shuffled epochs
    of 70 samples; their targets one-hot, or ``smoothed`` (0.9 one-hot + 0.01)."""
    model = model_of(name, backend, dtype)
    gpunet.set_train(model, True)
    optimizer = optimizer or gpunet.Momentum(0.1, 0.9)
    x, labels = mnist_like(70)
    y = gpunet.one_hot_encode(labels, backend=backend)
    if smoothed:
        y = y * 0.9 + 0.01
    records = []
    with pytest.MonkeyPatch.context() as patch:
        if not planned:
            patch.setattr(train_step, "plan_step", lambda *args: None)
        for epoch in (1, 2)[:epochs]:
            gpunet.seeding.start_epoch(epoch)
            metrics = EpochMetrics(backend, len(x), batch_size, epoch)
            for _ in gpunet.train.steps(model, gpunet.SoftmaxCrossEntropy(), optimizer, x, y,
                                        batch_size, shuffle=True, metrics=metrics,
                                        graph="off"):  # the planned step itself
                pass
            # the path taken: a planned run that planned nothing would prove nothing
            assert metrics.step_path == ("planned" if planned and batch_size <= len(x)
                                         else "eager")
            records += [backend.to_numpy(metrics.losses), backend.to_numpy(metrics.hits)]
    return [backend.to_numpy(p) for p in model.params()] + records


@pytest.mark.parametrize("name", ["logistic", "deep", "wide", "sigmoid-inverted", "relu-dropout",
                                  "leaky-relu-dropout"])
@pytest.mark.parametrize("batch_size", [1, 16, 70, 128])
def test_a_planned_step_gives_the_eager_steps_numbers_bit_for_bit(numpy_backend, name,
                                                                  batch_size):
    """Full batches planned, the shorter last one (70 = 4 x 16 + 6) eager, 128 all eager."""
    planned = train(numpy_backend, name, batch_size, planned=True)
    eager = train(numpy_backend, name, batch_size, planned=False)
    for a, b in zip(planned, eager, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch_size", [1, 16])
def test_targets_that_are_not_one_hot_plan_with_the_eager_numbers(numpy_backend, batch_size):
    """Smoothed targets have no classes (``target_classes``): the output stage
    sums every term of non-zero weight, as the eager loss does."""
    planned = train(numpy_backend, "deep", batch_size, planned=True, smoothed=True)
    eager = train(numpy_backend, "deep", batch_size, planned=False, smoothed=True)
    for a, b in zip(planned, eager, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", [gpunet.GradientDescent(0.5), None])
def test_float64_and_plain_gradient_descent_plan_alike(numpy_backend, optimizer):
    planned = train(numpy_backend, "deep", 16, planned=True, optimizer=optimizer, dtype="float64",
                    epochs=1)
    eager = train(numpy_backend, "deep", 16, planned=False,
                  optimizer=optimizer and gpunet.GradientDescent(0.5), dtype="float64", epochs=1)
    for a, b in zip(planned, eager, strict=True):
        np.testing.assert_array_equal(a, b)


def counted_calls(backend, run) -> list[str]:
    """The backend operations ``run()`` calls, outermost only (not those they call)."""
    calls, depth = [], [0]
    names = ["gemm", "dense_forward", "dense_backward", "dense_softmax_cross_entropy",
             "sgd_update", "momentum_update", "sigmoid", "tanh", "relu", "sigmoid_grad",
             "tanh_grad", "relu_grad", "softmax_cross_entropy", "matches", "dropout", "asarray",
             "uniform", "zeros_like"]
    with pytest.MonkeyPatch.context() as patch:
        for name in names:
            method = getattr(backend, name)

            def counted(*args, _method=method, _name=name, **kwargs):
                if depth[0] == 0:
                    calls.append(_name)
                depth[0] += 1
                try:
                    return _method(*args, **kwargs)
                finally:
                    depth[0] -= 1

            patch.setattr(backend, name, counted)
        run()
    return calls


def planned_deep_step(backend, batch=128):
    model = model_of("deep", backend)
    gpunet.set_train(model, True)
    optimizer = gpunet.Momentum(0.1, 0.9)
    plan = planning.plan_step(model, gpunet.SoftmaxCrossEntropy(), optimizer, backend, batch)
    x, labels = mnist_like(batch)
    x, y = backend.asarray(x), gpunet.one_hot_encode(labels, backend=backend)
    metrics = EpochMetrics(backend, batch, batch)

    def step():
        plan.run(x, y, metrics.losses, metrics.hits)

    step.model = model  # the plan holds its model only weakly
    return step


def test_a_deep_model_step_is_14_backend_calls(numpy_backend):
    """The output stage's bias gradient comes with its loss; each stage but the
    first, last first, passes its input gradient down to the stage below's
    backward; then each stage's weight gradient, last first."""
    step = planned_deep_step(numpy_backend)
    step()  # the optimizer's state starts on the first step
    calls = counted_calls(numpy_backend, step)
    assert calls == ["gemm", "dense_forward", "gemm", "dense_forward", "gemm",
                     "dense_softmax_cross_entropy", "gemm", "dense_backward", "gemm",
                     "dense_backward", "gemm", "gemm", "gemm", "momentum_update"], calls


def peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_planned_step_allocates_no_activation_sized_array(numpy_backend):
    """After the first step, nothing a step allocates is as large as one (1024, 30)
    activation: only the loss's row temporaries and NumPy's iteration buffers come
    and go. An eager step allocates several."""
    step = planned_deep_step(numpy_backend, batch=1024)
    step()
    activation = 1024 * 30 * 4
    assert peak_bytes(step) < activation
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_step, "plan_step", lambda *args: None)
        model = model_of("deep", numpy_backend)
        x, labels = mnist_like(1024)
        y = gpunet.one_hot_encode(labels, backend=numpy_backend)

        def eager():
            for _ in gpunet.train.steps(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1), x,
                                    y, 1024):
                pass

        eager()
        assert peak_bytes(eager) > 3 * activation


def test_a_plan_is_made_once_per_model_and_batch_size(numpy_backend):
    model = model_of("deep", numpy_backend)
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1)
    plan = planning.plan_step(model, loss, optimizer, numpy_backend, 16)
    assert planning.plan_step(model, loss, optimizer, numpy_backend, 16) is plan
    assert planning.plan_step(model, loss, optimizer, numpy_backend, 8) is not plan
    assert planning.plan_step(model, loss, gpunet.Momentum(0.1), numpy_backend, 8) is not plan
    gpunet.set_train(model, False)
    assert planning.plan_step(model, loss, optimizer, numpy_backend, 8) is None


@pytest.mark.parametrize("layers, planned", [
    (lambda b: [gpunet.Linear(4, 3, backend=b)], True),
    (lambda b: [gpunet.Linear(4, 5, backend=b), gpunet.Relu(), gpunet.Linear(5, 3, backend=b)], True),
    (lambda b: [gpunet.Linear(4, 5, backend=b), gpunet.Relu(), gpunet.Dropout(0.1),
                gpunet.Linear(5, 3, backend=b)], False),  # dropout after the activation
    (lambda b: [gpunet.Linear(4, 3, backend=b), gpunet.Tanh()], False),  # logits through tanh
    (lambda b: [gpunet.Tanh(), gpunet.Linear(4, 3, backend=b)], False),
    (lambda b: [gpunet.Linear(4, 3, backend=b), gpunet.Linear(4, 3, backend=b)], False),  # widths
    (lambda b: [], False),
])
def test_which_models_plan(numpy_backend, layers, planned):
    model = gpunet.Sequential(layers(numpy_backend))
    plan = planning.plan_step(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1),
                              numpy_backend, 8)
    assert (plan is not None) == planned


def test_what_else_trains_eagerly(numpy_backend):
    def plans(model=None, loss=None, optimizer=None) -> bool:
        model = model or gpunet.mnist_model("deep", backend=numpy_backend)
        return planning.plan_step(model, loss or gpunet.SoftmaxCrossEntropy(),
                                  optimizer or gpunet.Momentum(0.1), numpy_backend, 8) is not None

    class MyTanh(gpunet.Tanh):
        pass

    class MyMomentum(gpunet.Momentum):
        pass

    evaluating = gpunet.mnist_model("deep", backend=numpy_backend)
    gpunet.set_train(evaluating, False)
    assert plans()
    assert not plans(loss=gpunet.SSE())
    assert not plans(optimizer=MyMomentum(0.1))
    assert not plans(model=evaluating)
    assert not plans(model=gpunet.Sequential([gpunet.Linear(4, 5, backend=numpy_backend), MyTanh(),
                                              gpunet.Linear(5, 3, backend=numpy_backend)]))
    assert not plans(model=gpunet.Linear(4, 3, backend=numpy_backend))


def test_dense_forward_without_an_activation_writes_y(numpy_backend):
    z = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.empty_like(z)
    out = numpy_backend.dense_forward(z, np.float32([1, 2, 3]), y)
    assert out is y
    np.testing.assert_array_equal(y, [[1, 3, 5], [4, 6, 8]])


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["logistic", "deep", "wide", "sigmoid-inverted"])
def test_planned_steps_on_the_gpu_match_the_cpu(numpy_backend, name):
    """Two shuffled epochs with dropout at batch 16 (tail 6): the same hits and,
    within float32 rounding of the kernels, the same losses and parameters."""
    gpu = train(gpunet.get_backend("cupy"), name, 16, planned=True)
    cpu = train(numpy_backend, name, 16, planned=True)
    for a, b in zip(gpu, cpu, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_plan_does_not_keep_its_model_alive(numpy_backend):
    import gc
    import weakref

    model = model_of("deep", numpy_backend)
    planning.plan_step(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1), numpy_backend, 8)
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None


def test_the_plan_cache_key_holds_the_loss_scale(numpy_backend):
    """A rank's 8 rows of a 16-row batch take the mean over 16: that plan is not
    the one for a one-process batch of 8, whose mean is over 8."""
    model = model_of("deep", numpy_backend)
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1)
    share = planning.plan_step(model, loss, optimizer, numpy_backend, 8, whole=16)
    alone = planning.plan_step(model, loss, optimizer, numpy_backend, 8)
    assert (share.scale, alone.scale) == (1 / 16, 1 / 8) and alone is not share
    assert planning.plan_step(model, loss, optimizer, numpy_backend, 8, whole=16) is not alone


class ThirdOfThree(gpunet.distributed.Communicator):
    """Rank 0 of 3, alone in this process: each collective leaves its input as
    it is, which the planned and the eager step both see the same."""
    rank, size = 0, 3


def test_a_tail_share_of_a_planned_shares_size_runs_eagerly(numpy_backend):
    """63 samples on 3 ranks at batch 4: rank 0 takes 1 row of each full batch
    (planned, the mean over 4) and 1 row of the tail of 3 (eager, the mean
    over 3): the same numbers as every step eager, bit for bit."""
    x, labels = mnist_like(63)
    y = gpunet.one_hot_encode(labels, backend=numpy_backend)
    results, paths = [], []
    for planned in (True, False):
        model, optimizer = model_of("deep", numpy_backend), gpunet.Momentum(0.1, 0.9)
        gpunet.set_train(model, True)
        gpunet.seeding.start_epoch(1)
        metrics = EpochMetrics(numpy_backend, 63, 4, 1, comm=ThirdOfThree())
        with pytest.MonkeyPatch.context() as patch:
            if not planned:
                patch.setattr(train_step, "plan_step", lambda *args: None)
            for _ in gpunet.train.steps(model, gpunet.SoftmaxCrossEntropy(), optimizer, x, y, 4,
                                    metrics=metrics, comm=ThirdOfThree()):
                pass
        results.append([p.copy() for p in model.params()] + [metrics.losses])
        paths.append(metrics.step_path)
    assert paths == ["planned", "eager"]
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_model_keeps_plans_for_its_last_two_batch_sizes(numpy_backend):
    """An epoch's full batches and its tail each keep a plan (PLANS_KEPT); a
    third batch size drops the one asked for least recently."""
    model, loss, optimizer = (model_of("deep", numpy_backend), gpunet.SoftmaxCrossEntropy(),
                              gpunet.Momentum(0.1, 0.9))

    def plan(batch: int) -> planning.StepPlan:
        return planning.plan_step(model, loss, optimizer, numpy_backend, batch)

    full, tail = plan(16), plan(6)
    assert plan(16) is full and plan(6) is tail and (full.batch, tail.batch) == (16, 6)
    assert planning.step.PLANS_KEPT == 2
    plan(16)
    plan(10)  # drops 6's, asked for before 16's last time
    assert plan(16) is full and plan(6) is not tail

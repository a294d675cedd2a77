"""Graph replay of the planned step, on the CPU: the NumPy backend records the
step's operations as it runs once and replays them with the same arguments (the
stand-in), or as calls bound once with its stages in C (host), so everything
that varies per step must come from the device state, as in a CUDA graph. Both
give the planned step's numbers bit for bit."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest

from benchmarks.backend_files import fresh_backend_modules
import gpunet
from gpunet.backend import host_c
from gpunet.backend.graph_step import GraphCaptureError
from gpunet.backend.numpy_backend import NumpyBackend
from gpunet.bench.trainers import mnist_like
from gpunet.train import EpochMetrics
from gpunet.planning import graph as graphs
from helpers.cli import gpunet_cli
from helpers.models import model_of

MODELS = ["logistic", "deep", "wide", "sigmoid-inverted", "relu-dropout", "leaky-relu-dropout"]


def host_or_skip() -> None:
    """Skip where the host replay's C cannot be built or loaded, saying why."""
    if isinstance(reason := host_c.library(), str):
        pytest.skip(f"no host replay: {reason}")


@pytest.fixture(params=NumpyBackend.GRAPH_GEMMS)
def numpy_gemm(request, numpy_backend, monkeypatch) -> str:
    """Each of the NumPy backend's graph GEMMs, as the only one its captures try."""
    if request.param == "host":
        host_or_skip()
    monkeypatch.setattr(numpy_backend, "GRAPH_GEMMS", (request.param,))
    return request.param


def train(backend, name, batch_size, graph, *, epochs=3, samples=70, model=None):
    """Parameters, each epoch's losses and hits, the last step's dropout masks,
    and each epoch's step_path, after shuffled epochs of ``samples``."""
    model = model or model_of(name, backend)
    gpunet.set_train(model, True)
    optimizer = gpunet.Momentum(0.1, 0.9)
    x, labels = mnist_like(samples)
    y = gpunet.one_hot_encode(labels, backend=backend)
    records, paths = [], []
    for epoch in range(1, epochs + 1):
        gpunet.seeding.start_epoch(epoch)
        metrics = EpochMetrics(backend, len(x), batch_size, epoch)
        for _ in gpunet.train.steps(model, gpunet.SoftmaxCrossEntropy(), optimizer, x, y, batch_size,
                                shuffle=True, metrics=metrics, graph=graph):
            pass
        records += [metrics.losses.copy(), metrics.hits.copy()]
        paths.append(metrics.step_path)
    plan = gpunet.planning.step._PLANS.get(model, {}).get(batch_size)
    masks = [m.copy() for m in plan.masks if m is not None] if plan else []
    return [p.copy() for p in model.params()] + records + masks, paths


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch_size", [1, 16, 35])
def test_graph_replay_gives_the_planned_steps_numbers_bit_for_bit(numpy_backend, numpy_gemm,
                                                                    name, batch_size):
    """Three shuffled epochs of 70: the tail batch (70 = 4 x 16 + 6) planned, the
    per-epoch reseed captured again, dropout notebook-style and inverted."""
    replayed, paths = train(numpy_backend, name, batch_size, "on")
    planned, planned_paths = train(numpy_backend, name, batch_size, "off")
    for a, b in zip(replayed, planned, strict=True):
        np.testing.assert_array_equal(a, b)
    captured = [f"graph ({numpy_gemm})"] * 3
    if batch_size == 35:  # two full batches an epoch: the third is the first captured
        captured[0] = "planned"
    assert paths == captured and planned_paths == ["planned"] * 3


def test_the_first_two_steps_run_eagerly(numpy_backend, numpy_gemm):
    """One full batch an epoch: the warm-up through the plan, then the recorded
    step run eagerly; captured from the third."""
    _, paths = train(numpy_backend, "deep", 70, "on")
    assert paths == ["planned", "planned", f"graph ({numpy_gemm})"]


def test_the_state_advances_by_a_batch_and_its_draws_each_step(numpy_backend):
    model = model_of("deep", numpy_backend)
    start = []
    real = graphs.StepGraph.start_epoch

    def starting(self, *args):
        real(self, *args)
        start.append(self.state.copy())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(graphs.StepGraph, "start_epoch", starting)
        train(numpy_backend, "deep", 16, "on", epochs=2, model=model)
    plan = gpunet.planning.step._PLANS[model][16]
    assert plan.counters == 16 * 30 + 16 * 10  # the deep model's two dropout stages
    assert plan.skips == [0, 16 * 30, 16 * 40]
    graph, epoch_start = graphs._GRAPHS[model], start[-1]
    offset, counter, key = (int(v) for v in graph.state)
    assert list(epoch_start) == [0, 70, numpy_backend.key]  # after the shuffle's 70
    assert (offset, counter, key) == (4 * 16, 70 + 4 * plan.counters, numpy_backend.key)
    assert numpy_backend.drawn == counter + 6 * 40  # and the planned tail of 6 rows


def test_a_new_batch_size_plans_and_captures_again(numpy_backend, numpy_gemm):
    results = {}
    for graph in ("on", "off"):
        model = model_of("relu-dropout", numpy_backend)
        first, _ = train(numpy_backend, None, 16, graph, epochs=1, model=model)
        plan = gpunet.planning.step._PLANS[model][16]
        second, paths = train(numpy_backend, None, 10, graph, epochs=2, model=model)
        replanned = gpunet.planning.step._PLANS[model][10]
        assert replanned is not plan and replanned.batch == 10
        assert graphs._GRAPHS[model].plan is replanned
        if graph == "on":
            assert paths == [f"graph ({numpy_gemm})"] * 2
        results[graph] = first + second
    for a, b in zip(results["on"], results["off"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_stand_in_replays_the_recorded_arguments(numpy_backend):
    """A value the step took from the host is replayed as recorded, as a graph
    would; the rates are read from the device at each replay."""
    state, delta = np.zeros(4, np.uint64), np.array([3, 5, 0, 7], np.uint64)
    param, grad, rates = np.zeros(2, np.float32), np.ones(2, np.float32), np.ones(1, np.float32)

    def update() -> None:
        numpy_backend.update_and_advance(param, grad, None, rates, np.empty(2, np.float32),
                                         state, delta)

    replay = numpy_backend.capture(update, "stand-in")
    np.testing.assert_array_equal(state, [3, 5, 0, 7])
    rates[0] = 0.5
    replay()
    replay()
    np.testing.assert_array_equal(state, [9, 15, 0, 21])
    np.testing.assert_array_equal(param, [-2, -2])
    assert "update_and_advance" not in vars(numpy_backend)  # the recording is undone


class FakeBackend:
    """Captures fail for the GEMMs named in ``failing``, before running anything."""
    GRAPH_GEMMS = ("cuBLAS", "fallback GEMM")

    def __init__(self, failing):
        self.failing, self.tried, self.bound = failing, [], False

    def capture(self, record, gemm):
        self.tried.append(gemm)
        if gemm in self.failing:
            raise GraphCaptureError(f"{gemm}: refused")
        record()
        return record

    def bind(self, record):
        self.bound = True
        record()
        return record


@pytest.mark.parametrize("failing, tried, path", [
    ((), ["cuBLAS"], "graph (cuBLAS)"),
    (("cuBLAS",), ["cuBLAS", "fallback GEMM"], "graph (fallback GEMM; cuBLAS: refused)"),
    (("cuBLAS", "fallback GEMM"), ["cuBLAS", "fallback GEMM"],
     "planned (cuBLAS: refused; fallback GEMM: refused)")])
def test_a_failed_cublas_capture_falls_back_to_the_gemm_kernel(failing, tried, path):
    """The step runs once either way; with no capture, bound (``Backend.bind``)
    and run eagerly each time. The path names the GEMM that captured, or none,
    and why each before it failed."""
    backend, ran = FakeBackend(failing), []
    replay, got = graphs.capture(backend, lambda: ran.append(1), backend.GRAPH_GEMMS)
    assert (got, backend.tried, len(ran)) == (path, tried, 1)
    assert backend.bound == got.startswith("planned")
    replay()
    assert len(ran) == 2


def without_reasons(path: str) -> str:
    """A step path without the failures it lists: "graph (GEMM)" or "planned"."""
    kind, _, inside = path.partition(" (")
    return "planned" if kind == "planned" else f"graph ({inside.split(';')[0].rstrip(')')})"


# CupyBackend.capture itself, on any machine: CupyBackend loaded over a stand-in cupy
# module, its capture stream a stand-in that refuses a capture where a test says.
class CUDARuntimeError(RuntimeError):
    """cupy.cuda.runtime.CUDARuntimeError, as the stand-in cupy raises it."""


class StandInGraph:
    def __init__(self, gemm, launched):
        self.gemm, self.launched = gemm, launched

    def launch(self):
        self.launched.append(self.gemm)


class StandInStream:
    """cupy.cuda.Stream's capture calls: each capture is logged with the GEMM the
    backend's products use during it; ``fails`` maps a GEMM to the call
    ("begin_capture", "end_capture") that raises CUDARuntimeError for it."""

    def __init__(self, backend, fails):
        self.backend, self.fails = backend, fails
        self.log, self.launched, self.entered = [], [], 0

    def __enter__(self):
        self.entered += 1
        return self

    def __exit__(self, *exc):
        self.entered -= 1
        return False

    def _call(self, name):
        gemm = self.backend.captured_gemm
        assert self.entered == 1, f"{name} outside `with stream`"
        self.log.append((name, gemm))
        if self.fails.get(gemm) == name:
            raise CUDARuntimeError(f"cudaErrorStreamCaptureInvalidated: {name} ({gemm})")

    def begin_capture(self):
        self._call("begin_capture")

    def end_capture(self):
        self._call("end_capture")
        return StandInGraph(self.backend.captured_gemm, self.launched)


CURRENT = types.SimpleNamespace(ptr=0)  # the stand-in cupy's current stream


@pytest.fixture
def cupy_capture(monkeypatch):
    """make(fails, cublas_error=None) -> (CupyBackend's graph step operations over a
    stand-in cupy, their stand-in stream, the streams cuBLAS was prepared on): the
    real ``capture``, ``bind`` and ``run_step`` (cupy_graph_step.py)."""
    import sys

    cupy = types.ModuleType("cupy")
    cupy.ndarray = type("ndarray", (), {})
    runtime = types.SimpleNamespace(CUDARuntimeError=CUDARuntimeError)
    cupy.cuda = types.SimpleNamespace(Stream=StandInStream, get_current_stream=lambda: CURRENT,
                                      runtime=runtime)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    prepared = []

    def make(fails, cublas_error=None):
        class Cublas:
            def prepare(self, stream):
                prepared.append(stream)
                if cublas_error:
                    raise cublas_error

        cublas = types.ModuleType("gpunet.backend.cublas_capture")
        cublas.captured_cublas = Cublas
        cublas.BoundGemm = type("BoundGemm", (), {})
        monkeypatch.setitem(sys.modules, "gpunet.backend.cublas_capture", cublas)
        (module,) = fresh_backend_modules("cupy_graph_step.py")
        backend = module.CupyGraphStepOperations()
        stream = StandInStream(backend, fails)
        monkeypatch.setattr(module, "_capture_stream", lambda: stream)
        monkeypatch.setattr(module, "_side_streams",
                            lambda sizes: types.SimpleNamespace(forget=lambda: None))
        return backend, stream, prepared

    return make


@pytest.mark.parametrize("fails, path", [
    ({}, "graph (cuBLAS)"),
    ({"cuBLAS": "begin_capture"}, "graph (fallback GEMM)"),
    ({"cuBLAS": "end_capture"}, "graph (fallback GEMM)"),
    ({"cuBLAS": "begin_capture", "fallback GEMM": "begin_capture"}, "planned"),
    ({"cuBLAS": "end_capture", "fallback GEMM": "end_capture"}, "planned")],
    ids=["cuBLAS", "begin_capture refused", "end_capture refused",
         "both refused at begin", "both refused at end"])
def test_cupy_backend_capture_falls_back_when_the_stream_refuses(cupy_capture, fails, path):
    """CupyBackend.capture, through graphs.capture: a capture the stream refuses
    (at begin_capture or end_capture) is a GraphCaptureError, so the next GEMM is
    tried; the step runs once, under the capture that worked (its products through
    that GEMM) and launched once, or, when none did, eagerly as the first
    recorded step ran (``run_step``), bound (``bind``: its replays launch what it
    bound, here nothing); replays launch the graph."""
    backend, stream, prepared = cupy_capture(fails)
    ran = []
    replay, got = graphs.capture(backend, lambda: ran.append(backend.captured_gemm),
                                 backend.GRAPH_GEMMS)
    assert without_reasons(got) == path
    assert all(f"{gemm}: CUDARuntimeError: " in got for gemm in fails), got  # each failure's
    tried = list(backend.GRAPH_GEMMS[:1 + ("cuBLAS" in fails)])
    assert [gemm for call, gemm in stream.log if call == "begin_capture"] == tried
    # libcublas readied for the stream of the capture, then for the current one
    assert prepared == [stream] + [CURRENT] * (path == "planned")
    assert backend.captured_gemm is None and backend.bound is None and stream.entered == 0
    # under a capture the step is recorded (its products through that GEMM), not run
    begun = [gemm for gemm in tried if fails.get(gemm) != "begin_capture"]
    if path == "planned":
        assert ran == begun + ["cuBLAS"] and stream.launched == []  # run once, bound
        replay()
        assert ran == begun + ["cuBLAS"] and stream.launched == []
        assert prepared == [stream, CURRENT]  # it bound no libcublas call to prepare for
    else:
        gemm = path.removeprefix("graph (").removesuffix(")")
        assert None not in ran and stream.launched == [gemm]  # run once: the launch
        replay()
        assert len(ran) == len(begun) and stream.launched == [gemm, gemm]


@pytest.mark.parametrize("where", ["libcublas does not load", "a product refused"])
def test_cupy_backend_capture_falls_back_when_cublas_fails(cupy_capture, where):
    """libcublas that cannot be loaded (before any capture), or a cuBLAS call the
    capture refuses (the capture is ended, not left open): the fallback GEMM kernel."""
    backend, stream, prepared = cupy_capture(
        {}, OSError("libcublas.so.12: cannot open") if where == "libcublas does not load" else None)
    ran = []

    def step():
        ran.append(backend.captured_gemm)
        if backend.captured_gemm == "cuBLAS":
            raise CUDARuntimeError("CUBLAS_STATUS_NOT_SUPPORTED")

    replay, got = graphs.capture(backend, step, backend.GRAPH_GEMMS)
    reason = ("OSError: libcublas.so.12: cannot open" if where == "libcublas does not load"
              else "CUDARuntimeError: CUBLAS_STATUS_NOT_SUPPORTED")
    assert got == f"graph (fallback GEMM; cuBLAS: {reason})"
    assert stream.launched == ["fallback GEMM"]
    if where == "libcublas does not load":
        assert ran == ["fallback GEMM"]
        assert stream.log == [("begin_capture", "fallback GEMM"), ("end_capture", "fallback GEMM")]
    else:
        assert ran == ["cuBLAS", "fallback GEMM"]
        assert [call for call, _ in stream.log] == ["begin_capture", "end_capture"] * 2
    assert backend.captured_gemm is None and stream.entered == 0


def test_cupy_backend_runs_a_step_by_the_gemm_kernel_where_cublas_fails(cupy_capture):
    """A recorded step run eagerly (the first, or bound: the planned step) where
    libcublas cannot be readied takes the fallback GEMM kernel for every product,
    as that capture does, and does not fail."""
    backend, stream, prepared = cupy_capture({}, OSError("libcublas.so.12: cannot open"))
    ran = []
    backend.run_step(lambda: ran.append(backend.captured_gemm))
    assert ran == ["fallback GEMM"] and backend.captured_gemm is None and prepared == [CURRENT]


def test_each_graph_mode_tries_the_gemms_it_names(numpy_backend):
    """"on" every one of the backend's, "off" none, "auto" NumPy's host replay
    (and CuPy's CUDA graph, AUTO_ON_CUPY: below)."""
    assert graphs.AUTO_ON_CUPY
    assert graphs.graph_gemms("on", numpy_backend) == ("host", "stand-in")
    assert graphs.graph_gemms("auto", numpy_backend) == ("host",)
    assert graphs.graph_gemms("off", numpy_backend) == ()


def test_auto_on_numpy_replays_on_the_host_or_says_why_not(numpy_backend):
    reason = host_c.library()
    _, paths = train(numpy_backend, "deep", 16, "auto", epochs=1)
    assert paths == [f"planned (host: {reason})" if isinstance(reason, str) else "graph (host)"]


def test_without_a_c_compiler_the_step_path_says_so_with_the_same_numbers(numpy_backend,
                                                                          monkeypatch):
    """No C for the host replay: "auto" runs the planned step, "on" the
    stand-in, each path saying why; the numbers are the planned step's."""
    planned, _ = train(numpy_backend, "deep", 16, "off", epochs=2)
    monkeypatch.setattr(host_c, "library", lambda: "no C compiler: cc is not on PATH")
    for graph, path in (("auto", "planned (host: no C compiler: cc is not on PATH)"),
                        ("on", "graph (stand-in; host: no C compiler: cc is not on PATH)")):
        got, paths = train(numpy_backend, "deep", 16, graph, epochs=2)
        assert paths == [path] * 2
        for a, b in zip(got, planned, strict=True):
            np.testing.assert_array_equal(a, b)


def test_train_epoch_takes_the_graph_mode_with_the_same_numbers(numpy_backend):
    x, labels = mnist_like(70)
    y = gpunet.one_hot_encode(labels, backend=numpy_backend)
    results = []
    for graph in ("on", "off"):
        gpunet.seed(3)
        model = model_of("deep", numpy_backend)
        optimizer = gpunet.Momentum(0.1, 0.9)
        losses = [float(gpunet.train_epoch(model, gpunet.SoftmaxCrossEntropy(), optimizer, x,
                                           y, 16, shuffle=True, graph=graph))
                  for _ in range(3)]
        results.append((losses, [p.copy() for p in model.params()]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="graph must be one of on, off, auto, got 'yes'"):
        gpunet.train_epoch(model, gpunet.SoftmaxCrossEntropy(), optimizer, x, y, 16, graph="yes")


@pytest.mark.parametrize("bad", ["yes", None, True])
def test_a_bad_graph_mode_is_refused(numpy_backend, bad):
    x, y = np.zeros((4, 784), np.float32), np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    model = model_of("deep", numpy_backend)
    with pytest.raises(ValueError, match=f"graph must be one of on, off, auto, got {bad!r}"):
        gpunet.fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1, 0.9), x, y,
                   epochs=1, graph=bad, progress=False)


def test_train_graph_on_replays_on_the_host_on_numpy(fashion_dir, tmp_path):
    metrics = tmp_path / "run.json"
    done = gpunet_cli("train", "--dataset", "fashion-mnist", "--train-subset", "300",
                      "--test-subset", "100", "--batch-size", "64", "--epochs", "2",
                      "--backend", "numpy", "--quiet", "--graph", "on",
                      "--metrics", str(metrics))
    assert done.returncode == 0, done.stderr
    history = json.loads(metrics.read_text())["history"]
    reason = host_c.library()
    assert [h["step_path"] for h in history] == [
        f"graph (stand-in; host: {reason})" if isinstance(reason, str) else "graph (host)"] * 2
    assert f"samples/s, step {history[-1]['step_path']}" in done.stdout


def test_train_refuses_a_bad_graph_value():
    done = gpunet_cli("train", "--graph", "maybe", "--backend", "numpy")
    assert done.returncode == 2
    assert "argument --graph: invalid choice: 'maybe'" in done.stderr
    assert "Traceback" not in done.stderr


def test_info_says_what_graph_auto_does():
    done = gpunet_cli("info")
    assert done.returncode == 0
    assert graphs.explain_auto_graph() in done.stdout.splitlines()


# On a GPU (scripts/gpu_check.sh): a CUDA graph, against the planned step run eagerly.
@pytest.fixture
def gpu() -> gpunet.Backend:
    return gpunet.get_backend("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["deep", "relu-dropout"])
def test_cuda_graph_replay_equals_the_eager_planned_step(gpu, numpy_backend, name):
    """Against the planned step on the GPU, which makes the same kernel and
    cuBLAS calls: the parameters after the epochs and each sample's loss in each
    epoch bit for bit, the same hits. Against the NumPy backend's graph
    stand-in: the same dropout masks, and the same hits (the same shuffles)."""
    replayed, paths = train(gpu, name, 16, "on")
    planned, _ = train(gpu, name, 16, "off")
    on_cpu, _ = train(numpy_backend, name, 16, "on")
    assert set(paths) <= {"graph (cuBLAS)", "graph (fallback GEMM)"}, paths
    params = len(model_of(name, numpy_backend).params())
    assert len(replayed) == len(planned) == len(on_cpu) >= params + 6
    # the parameters, then each of the three epochs' losses and hits, then the masks
    losses, hits = slice(params, params + 6, 2), slice(params + 1, params + 6, 2)
    for a, b in zip(replayed[:params] + replayed[losses], planned[:params] + planned[losses],
                    strict=True):
        np.testing.assert_array_equal(gpu.to_numpy(a), gpu.to_numpy(b))
    for a, b, c in zip(replayed[hits], planned[hits], on_cpu[hits], strict=True):
        assert gpu.to_numpy(a).dtype == bool and gpu.to_numpy(a).size == 70
        np.testing.assert_array_equal(gpu.to_numpy(a), gpu.to_numpy(b))
        np.testing.assert_array_equal(gpu.to_numpy(a), c)
    masks = slice(params + 6, None)
    for a, b in zip(replayed[masks], on_cpu[masks], strict=True):
        np.testing.assert_array_equal(gpu.to_numpy(a), b)


@pytest.mark.gpu
def test_nothing_allocates_while_capturing(gpu):
    import cupy

    class Allocations(cupy.cuda.MemoryHook):
        name = "gpunet-capture-allocations"

        def __init__(self) -> None:
            self.sizes: list[int] = []

        def malloc_preprocess(self, **kwargs) -> None:
            self.sizes.append(kwargs["mem_size"])

    hook, real = Allocations(), graphs.StepGraph.record

    def record(self) -> None:
        if not self.recorded:  # the recorded step's first, eager run: it may allocate
            return real(self)
        with hook:
            real(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(graphs.StepGraph, "record", record)
        _, paths = train(gpu, "deep", 16, "on", epochs=2)
    assert paths[-1].startswith("graph"), paths
    assert hook.sizes == []


def test_info_says_what_graph_auto_does_in_plain_words():
    assert graphs.explain_auto_graph().startswith(
        "--graph auto (train's default): on numpy each full batch's step is replayed as calls "
        "bound once")


def interleaved(backend, graph, change, models=1, epochs=2):
    """Each model's parameters and losses after ``epochs`` shuffled epochs of 70
    at batch 8, the models' steps taken in turn, ``change(step, model, optimizer)``
    called before every step."""
    x, labels = mnist_like(70)
    y = gpunet.one_hot_encode(labels, backend=backend)
    runs = [(model_of("relu-dropout", backend), gpunet.Momentum(0.1, 0.9)) for _ in range(models)]
    results = []
    for epoch in range(1, epochs + 1):
        gpunet.seeding.start_epoch(epoch)
        epochs_steps = []
        for model, optimizer in runs:
            gpunet.set_train(model, True)
            metrics = EpochMetrics(backend, len(x), 8, epoch)
            results.append(metrics.losses)
            epochs_steps.append(gpunet.train.steps(model, gpunet.SoftmaxCrossEntropy(), optimizer,
                                               x, y, 8, shuffle=True, metrics=metrics,
                                               graph=graph))
        for step in range(len(x) // 8 + 1):
            for (model, optimizer), taken in zip(runs, epochs_steps):
                change(step, model, optimizer)
                next(taken)
        assert metrics.step_path.startswith("graph (") == (graph == "on"), metrics.step_path
    return [p.copy() for model, _ in runs for p in model.params()] + results


def no_change(step, model, optimizer):
    pass


def new_rates(step, model, optimizer):
    """Between steps: the learning rate, the momentum, then Dropout.p and its scale."""
    if step == 3:
        optimizer.lr = 0.02
    if step == 5:
        optimizer.mo = 0.5
    if step == 6:
        model.layers[1].p = 0.25
    if step == 7:
        model.layers[1].inverted = True


def new_state(step, model, optimizer):
    """The optimizer's state replaced (as loading a checkpoint does)."""
    if step == 4:
        optimizer.updates = [u * 0.5 for u in optimizer.updates]


@pytest.mark.parametrize("change, models", [(new_rates, 1), (new_state, 1), (no_change, 2)])
def test_replay_honours_what_changed_between_steps(numpy_backend, change, models):
    """A learning rate, momentum, dropout p or optimizer state changed between
    steps, and two models' steps taken in turn on one backend: the graph's
    numbers are the planned step's, bit for bit."""
    replayed = interleaved(numpy_backend, "on", change, models)
    planned = interleaved(numpy_backend, "off", change, models)
    for a, b in zip(replayed, planned, strict=True):
        np.testing.assert_array_equal(a, b)


def test_replay_captures_again_only_when_a_baked_value_changes(numpy_backend):
    captures = []
    real = graphs.capture

    def counting(backend, record, gemms):
        captures.append(1)
        return real(backend, record, gemms)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(graphs, "capture", counting)
        interleaved(numpy_backend, "on", no_change, epochs=3)
        assert len(captures) == 1  # once per run: the order, key and metrics are the device's
        interleaved(numpy_backend, "on", new_rates, epochs=1)
    assert len(captures) == 1 + 1 + 2  # the run's, then for dropout's p and its scale only:
    # the learning rate and momentum are read from the device


@pytest.mark.gpu
@pytest.mark.parametrize("change, models", [(new_rates, 1), (new_state, 1), (no_change, 2)])
def test_cuda_replay_honours_what_changed_between_steps(gpu, change, models):
    """As on the CPU, bit for bit: the CUDA graph reads the rates, key and
    counter from the device, captures again when a baked value changed, and
    starts at the backend's counter."""
    replayed = interleaved(gpu, "on", change, models)
    planned = interleaved(gpu, "off", change, models)
    for a, b in zip(replayed, planned, strict=True):
        np.testing.assert_array_equal(gpu.to_numpy(a), gpu.to_numpy(b))


@pytest.mark.parametrize("auto_on_cupy", [False, True])
def test_graph_auto_on_cupy_follows_auto_on_cupy(numpy_backend, auto_on_cupy):
    """--graph auto on a backend named cupy (the NumPy one renamed, its stand-in
    its only GEMM and no AUTO_GRAPH_GEMMS, as CupyBackend has none) replays as
    a graph exactly when AUTO_ON_CUPY says so, with the planned step's numbers
    either way; on numpy AUTO_ON_CUPY changes nothing."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(graphs, "AUTO_ON_CUPY", auto_on_cupy)
        assert graphs.graph_gemms("auto", numpy_backend) == ("host",)
        patch.setattr(numpy_backend, "name", "cupy")
        patch.setattr(numpy_backend, "GRAPH_GEMMS", ("stand-in",))
        patch.setattr(numpy_backend, "AUTO_GRAPH_GEMMS", ())
        assert graphs.graph_gemms("auto", numpy_backend) == (("stand-in",) if auto_on_cupy
                                                             else ())
        auto, paths = train(numpy_backend, "deep", 16, "auto", epochs=2)
    planned, _ = train(numpy_backend, "deep", 16, "off", epochs=2)
    assert paths == ["graph (stand-in)" if auto_on_cupy else "planned"] * 2
    for a, b in zip(auto, planned, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
def test_graph_auto_on_a_gpu_takes_the_path_auto_on_cupy_names(gpu):
    _, paths = train(gpu, "deep", 16, "auto", epochs=1)
    assert paths[0].startswith("graph (") == graphs.AUTO_ON_CUPY, paths

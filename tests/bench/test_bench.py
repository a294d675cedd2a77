"""gpunet bench: the whole harness on tiny cases, checking what it writes (never how fast)."""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet

from gpunet.bench.flags import NOISY_MARK, LoadWatch
from gpunet.bench.ops import OPS, op_case
from gpunet.bench.outputs import write_outputs
from gpunet.bench.report import markdown
from gpunet.bench.roofline import roofline, step_cost
from gpunet.bench.timing import MIN_REPEATS, CudaEventClock, HostClock, Timing, measure
from gpunet.bench.trainers import GpunetTrainer, mnist_like
from gpunet.cli import bench, main
from gpunet.cli.options import common_options
from helpers.bench import environment, measured_with, train_record
from helpers.cli import fails, gpunet_cli
from helpers.paths import ROOT

TINY = ["--quick", "--op-sizes", "1000", "--models", "logistic", "--batch-sizes", "1", "16",
        "--epoch-samples", "64", "--budget", "0.01", "--peers", "notebook"]
REPO = ROOT


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["bench", *TINY, "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


def timed(results):
    """The records of measurements (the notebook's rate is extrapolated, not timed)."""
    return [r for r in results if r.get("peer") != "notebook"]


def test_run_writes_every_output(tiny_run):
    out, measured = tiny_run
    assert set(measured) == {"environment", "config", "skipped", "results"}
    assert {"processor", "cores", "load_average", "python", "numpy", "gpunet", "thread_pools",
            "cuda"} <= set(measured["environment"])
    text = (out / "results.md").read_text()
    assert "## Training throughput" in text and "## Operations" in text
    pytest.importorskip("matplotlib")
    for name in ("throughput.png", "bandwidth.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_run_measures_each_case(tiny_run):
    _, measured = tiny_run
    ops = {(r["op"], r["variant"], r["backend"]) for r in measured["results"] if r["case"] == "op"}
    assert ops == {(op, variant, "numpy") for op in OPS for variant in ("kernel", "expression")}
    train = [r for r in measured["results"] if r["case"] == "train" and r["peer"] == "gpunet"]
    assert {(r["model"], r["batch_size"], r["what"]) for r in train} == {
        ("logistic", b, w) for b in (1, 16) for w in ("step", "epoch")}
    for record in train:  # after a warm-up call, at least three readings of each
        assert record["repeats"] >= MIN_REPEATS and record["calls"] == 1
        assert record["step_memory_measure"] == "tracemalloc peak"
        assert record["step_memory_bytes"] > 0
    notebook = [r for r in measured["results"] if r.get("peer") == "notebook"]
    assert [(r["model"], r["batch_size"]) for r in notebook] == [("logistic", 1)]
    assert notebook[0]["samples"] >= 1


def test_every_reading_is_recorded_with_min_median_max_and_spread(tiny_run):
    _, measured = tiny_run
    for r in timed(measured["results"]):
        times = r["times_s"]
        assert len(times) == r["repeats"] and all(t > 0 for t in times)
        assert (r["min_s"], r["median_s"], r["max_s"]) == (
            min(times), statistics.median(times), max(times))
        assert r["spread"] == pytest.approx((max(times) - min(times)) / statistics.median(times))
        assert r["noisy"] is (r["spread"] > 0.25)


def test_blas_thread_pools_are_recorded(tiny_run):
    out, measured = tiny_run
    blas = [pool for pool in measured["environment"]["thread_pools"] if pool["user_api"] == "blas"]
    assert blas, "NumPy's BLAS was not found"
    for pool in blas:
        assert pool["num_threads"] >= 1 and pool["internal_api"]
        assert (f"{pool['internal_api']} {pool['version']} (blas"
                in (out / "results.md").read_text())
        assert f"): {pool['num_threads']} threads" in (out / "results.md").read_text()


def test_unusable_backends_are_reported_not_fatal(tiny_run):
    _, measured = tiny_run
    if measured["environment"]["cuda"]["usable"]:
        pytest.skip("a CUDA device is usable here")
    assert any(reason.startswith("backend cupy:") for reason in measured["skipped"])
    assert "backend cupy:" in markdown(measured)


# -- spread: (max - min) / median > 25% is noisy ---------------------------------------------

@pytest.mark.parametrize("times, spread, noisy", [
    ([1.0, 1.1, 1.2], 0.2 / 1.1, False),
    ([1.0, 1.0, 1.25], 0.25, False),
    ([2.0, 1.0, 1.2], 1.0 / 1.2, True),
])
def test_spread_and_noisy(times, spread, noisy):
    record = Timing(times, calls=1).record()
    assert record["times_s"] == times and record["repeats"] == 3
    assert (record["min_s"], record["median_s"], record["max_s"]) == (
        min(times), sorted(times)[1], max(times))
    assert record["spread"] == pytest.approx(spread) and record["noisy"] is noisy


def op_record(variant, times):
    return {"case": "op", "op": "tanh", "backend": "numpy", "variant": variant, "size": 1000,
            **Timing(times, 1).record(), "gb_per_s": 1.0}


def test_markdown_marks_noisy_measurements_and_says_why():
    text = markdown({"environment": environment(), "skipped": [], "results": [
        train_record("step", [1e-3, 1.2e-3, 2e-3]), train_record("epoch", [1.0, 1.1, 1.2]),
        op_record("kernel", [1e-6, 1e-6, 1e-6]), op_record("expression", [1e-6, 2e-6, 3e-3])]})
    lines = text.splitlines()
    note = next(line for line in lines if line.startswith(NOISY_MARK))
    assert "2 of 4 measurements" in note and "more than 25% of their median" in note
    assert "(max - min) / median" in note
    [step] = [line for line in lines if "| step |" in line]
    [epoch] = [line for line in lines if "| epoch |" in line]
    assert f"| 6,667 {NOISY_MARK} | 1 / 1.2 / 2 ms | 83% |" in step
    assert NOISY_MARK not in epoch and "| 1 / 1.1 / 1.2 s | 18% |" in epoch
    [op] = [line for line in lines if line.startswith("| tanh |")]
    assert f"| 1.00 | 1 / 1 / 1 µs | 1.00 {NOISY_MARK} | 1 / 2 / 3,000 µs | 2.00x |" in op
    assert "- load average when the run ended: 1.50 / 1.00 / 0.50" in text
    assert "- thread pools: openblas 0.3 (blas, pthreads): 3 threads" in text


def test_markdown_says_when_nothing_is_noisy():
    text = markdown({"environment": environment(), "skipped": [],
                     "results": [train_record("epoch", [1.0, 1.1, 1.2])]})
    assert NOISY_MARK not in text
    assert "No measurement is noisy: none of the 1 has readings spread by more than 25%" in text


# -- the output folder ----------------------------------------------------------------------

def test_a_figure_the_results_do_not_back_is_removed(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    for name in ("throughput.png", "bandwidth.png"):
        (tmp_path / name).write_text("an earlier run's figure")
    written = write_outputs(measured_with([train_record("epoch", [1.0, 1.1, 1.2])]), tmp_path,
                            say=print)
    assert sorted(p.name for p in written) == ["results.json", "results.md", "throughput.png"]
    assert (tmp_path / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "bandwidth.png").exists()
    assert f"removed {tmp_path / 'bandwidth.png'}" in capsys.readouterr().out


def test_without_matplotlib_no_earlier_figure_stays_and_the_files_say_why(tmp_path, monkeypatch):
    for name in ["matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg"]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("throughput.png", "bandwidth.png"):
        (tmp_path / name).write_text("an earlier run's figure")
    results = [train_record("epoch", [1.0, 1.1, 1.2]), op_record("kernel", [1e-6] * 3)]
    written = write_outputs(measured_with(results), tmp_path, say=lambda line: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]
    assert [p.name for p in written] == ["results.json", "results.md"]
    skipped = json.loads((tmp_path / "results.json").read_text())["skipped"]
    assert len(skipped) == 1 and skipped[0].startswith("figures: matplotlib is needed")
    assert "figures: matplotlib is needed" in (tmp_path / "results.md").read_text()


def hide_cupy(tmp_path: Path) -> dict[str, str]:
    """An environment in which CuPy does not import, so the cupy backend is
    unavailable on any machine."""
    (tmp_path / "hidden" / "cupy").mkdir(parents=True)
    (tmp_path / "hidden" / "cupy" / "__init__.py").write_text("raise ImportError('hidden')")
    return {"PYTHONPATH": str(tmp_path / "hidden")}


@pytest.mark.parametrize("options, reason", [
    (["--peers"], "backend cupy: "),
    (["--peers", "notebook", "--batch-sizes", "16"],
     "notebook: it trains at batch size 1 only, and the batch sizes leave 1 out"),
])
def test_a_run_that_measures_nothing_fails_and_writes_nothing(tmp_path, options, reason):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("results.json", "throughput.png"):
        (out / name).write_text("kept")
    done = gpunet_cli("bench", "--quick", "--backends", "cupy", *options, "--out", str(out),
                      env=hide_cupy(tmp_path))
    fails(done, 2, "gpunet: error: nothing measured (backend cupy: ")
    assert reason in done.stderr and done.stderr.strip().endswith(f"), so nothing written to {out}")
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "throughput.png"]
    assert all((out / name).read_text() == "kept" for name in ("results.json", "throughput.png"))


def test_a_rerun_leaves_no_figure_of_the_earlier_run(tmp_path):
    """Only the notebook peer measured: a throughput figure, and no bandwidth figure."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("throughput.png", "bandwidth.png"):
        (out / name).write_text("an earlier run's figure")
    done = gpunet_cli("bench", "--quick", "--backends", "cupy", "--peers", "notebook",
                      "--models", "logistic", "--batch-sizes", "1", "--out", str(out),
                      env=hide_cupy(tmp_path), cwd=tmp_path)  # the installed package, no checkout
    assert done.returncode == 0, done.stderr
    assert f"removed {out / 'bandwidth.png'}" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md",
                                                      "throughput.png"]
    assert (out / "throughput.png").read_bytes()[:4] == b"\x89PNG"


def test_an_output_name_that_is_a_folder_stops_the_run_before_it_starts(tmp_path, capsys):
    (tmp_path / "results.md").mkdir()
    assert main(["bench", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"gpunet: error: --out {tmp_path}: {tmp_path / 'results.md'} is a folder, "
        "where the results would go")


# -- timing ---------------------------------------------------------------------------------

def test_timing_statistics():
    timing = measure(lambda: None, HostClock(), repeats=5, warmup=2)
    record = timing.record()
    assert record["repeats"] == len(record["times_s"]) == 5
    assert record["min_s"] <= record["median_s"] <= record["max_s"]


def test_budget_stops_repeats_early_but_not_before_three():
    import time
    timing = measure(lambda: time.sleep(0.02), HostClock(), repeats=1000, budget_s=0.05)
    assert MIN_REPEATS <= len(timing.times_s) < 10
    assert len(measure(lambda: time.sleep(0.02), HostClock(), repeats=1000,
                       budget_s=0).times_s) == 3
    assert len(measure(lambda: None, HostClock(), repeats=2, budget_s=0).times_s) == 2


def test_cuda_events_time_many_calls_per_pair(monkeypatch):
    """A 2 µs kernel on a stand-in device clock: 500 calls (one more for rounding)
    span each 1 ms reading."""
    import types
    device = {"ms": 0.0}

    class Event:
        def record(self):
            self.at = device["ms"]

        def synchronize(self):
            pass

    def kernel():
        device["ms"] += 0.002

    cuda = types.SimpleNamespace(Event=Event, get_elapsed_time=lambda a, b: b.at - a.at)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=cuda))
    timing = measure(kernel, CudaEventClock(), repeats=5)
    assert timing.calls in (500, 501) and len(timing.times_s) == 5
    assert timing.median_s == pytest.approx(2e-6)


def test_op_bytes_and_unknown_op(numpy_backend):
    assert op_case("momentum_update", 1000, numpy_backend).bytes == 5 * 1000 * 4
    with pytest.raises(ValueError, match="unknown op 'gelu'"):
        op_case("gelu", 10, numpy_backend)


def test_roofline_counts_and_limits():
    flops, traffic = step_cost("logistic", 1)
    assert flops == 2 * 2 * 784 * 10 + 4 * (784 * 10 + 10)
    assert roofline("deep", 128, 1e-3, "Intel Xeon") is None
    bound = roofline("deep", 128, 1e-3, "NVIDIA H200")
    assert 0 < bound["fraction_of_roofline"] < 1 and bound["limit"] in ("memory", "compute")


# -- the command line -----------------------------------------------------------------------

def test_every_option_has_help():
    commands = argparse.ArgumentParser().add_subparsers()
    bench.add_commands(commands, common_options())
    actions = commands.choices["bench"]._actions
    for action in actions:
        assert action.help and action.help.strip(), action.option_strings
    [models] = [a for a in actions if "--models" in a.option_strings]
    assert "(default: logistic deep wide; --quick: logistic deep)" in models.help


@pytest.mark.parametrize("args, message", [
    (["bench", "--batch-sizes", "0"], "must be at least 1"),
    (["bench", "--backends", "tpu"], "invalid choice: 'tpu'"),
    (["bench", "--models", "resnet"], "invalid choice: 'resnet'"),
])
def test_bad_options(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_bench_core_runs_from_the_repository_root():
    """benchmarks/ is not installed: its entry point runs from the checkout."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_core", "--samples-batch1", "32",
                           "--samples", "64", "--batch-sizes", "1", "16", "--repeats", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line.split()[:2] for line in done.stdout.splitlines()] == [
        ["way", "batch"], ["train_epoch", "1"], ["train_epoch", "16"], ["public", "1"],
        ["public", "16"], ["public_numpy", "1"], ["public_numpy", "16"]]


def test_bench_cores_public_numpy_way_turns_the_c_off_for_its_epoch_only(monkeypatch):
    from benchmarks.bench_core import data, time_public_numpy
    from gpunet.backend.base import Backend

    backend = gpunet.get_backend("numpy")
    monkeypatch.setattr(backend, "host_c_on", True)
    numpy_dropout, seen = Backend.dropout, []

    def dropout(self, *args, **kwargs):
        seen.append(self.host_c_on)
        return numpy_dropout(self, *args, **kwargs)

    monkeypatch.setattr(Backend, "dropout", dropout)
    time_public_numpy(*data(8), 4)
    assert seen == [False] * 4 and backend.host_c_on is True


@pytest.mark.parametrize("batch_size", [1, 16])
def test_bench_cores_public_loop_trains_as_train_epoch(batch_size):
    """The two ways bench_core times compute the same numbers, bit for bit."""
    from benchmarks.bench_core import data, deep_model, public_epoch

    x, y = data(48)
    trained = []
    for way in ("train_epoch", "public"):
        model = deep_model()
        loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
        if way == "public":
            public_epoch(model, loss, optimizer, x, y, batch_size)
        else:
            gpunet.train_epoch(model, loss, optimizer, x, y, batch_size, graph="off")
        trained.append([p.copy() for p in model.params()])
    for ours, theirs in zip(*trained):
        np.testing.assert_array_equal(ours, theirs)


def test_the_graph_trainer_times_epochs_only_and_trains_as_the_planned_one():
    from gpunet.bench import harness

    backend = gpunet.get_backend("numpy")
    x, labels = mnist_like(40)
    graph = GpunetTrainer("deep", 16, x, labels, backend, graph="on")
    config = harness.Config.quick()
    config.epoch_samples, config.repeats, config.budget_s = 40, 3, 0.01
    records = harness._time_trainer(graph, "deep", 16, HostClock(), config, lambda line: None,
                                    LoadWatch(), steps=False)
    assert [r["what"] for r in records] == ["epoch"]
    assert records[0]["peer"] == "gpunet graph" and records[0]["step_memory_bytes"] is None
    planned = GpunetTrainer("deep", 16, x, labels, backend)  # reseeds: the same draws again
    assert planned.name == "gpunet"
    for _ in range(len(records[0]["times_s"]) + 1):  # the warm-up epoch and each timed one
        planned.epoch()
    for a, b in zip(graph.model.params(), planned.model.params(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_trainers_steps_capture_once_and_each_trains(monkeypatch):
    """A timed step replays the step captured at the first, as an epoch's steps
    do: the batch's arrays are the same each step (new ones mean a new capture)."""
    from gpunet.planning import graph

    captures = []

    def counted(*args):
        captures.append(args)
        return capture(*args)

    capture = graph.capture
    monkeypatch.setattr(graph, "capture", counted)
    x, labels = mnist_like(40)
    trainer = GpunetTrainer("deep", 1, x, labels, gpunet.get_backend("numpy"))
    before = [p.copy() for p in trainer.model.params()]
    for _ in range(6):
        trainer.step()
        after = [p.copy() for p in trainer.model.params()]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after))
        before = after
    assert len(captures) == 1


@pytest.mark.parametrize("way", ["plain", "planned", "replayed", "eager", "public"])
def test_each_way_step_instructions_counts_trains(way):
    """The process step_instructions runs under callgrind, here without it."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.step_instructions", "--run", way,
                           "3", "1"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_on_a_gpu_pytorch_is_timed_eager_and_as_a_graph_or_says_why_not(monkeypatch):
    """Stand-in peers: PyTorch 'runs' on cuda only; the graph capture fails for one model."""
    from gpunet.bench import harness, peers

    class Peer:
        device = "cuda"

        def __init__(self, graph):
            self.name = "torch graph" if graph else "torch"

        def step(self):
            pass

        epoch = synchronize = step

    def trainer(model, batch_size, x, y, device, graph=False):
        if graph and model == "deep":
            raise RuntimeError("operation not permitted when stream is capturing")
        return Peer(graph)

    monkeypatch.setattr(peers, "torch_unavailable", lambda device: "no" if device == "cpu" else None)
    monkeypatch.setattr(peers, "torch_trainer", trainer)
    monkeypatch.setattr(harness, "step_memory", lambda trainer: (None, None))
    config = harness.Config.quick()
    config.models, config.batch_sizes, config.peers = ["logistic", "deep"], [16], ["torch"]
    config.epoch_samples, config.repeats, config.budget_s = 32, 3, 0.01
    skipped = []
    records = harness._peer_results(config, skipped, lambda line: None, LoadWatch())
    assert sorted({(r["peer"], r["model"]) for r in records}) == [
        ("torch", "deep"), ("torch", "logistic"), ("torch graph", "logistic")]
    assert skipped == ["torch cpu: no", "torch graph cuda deep batch 16: capture failed: "
                       "operation not permitted when stream is capturing"]

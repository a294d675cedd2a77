"""gpunet bench --quick: the whole harness once, checking what it writes (never how fast)."""
import json

import pytest

from benchmarks.harness import Config
from benchmarks.ops import OPS, op_case
from benchmarks.report import markdown
from benchmarks.roofline import roofline, step_cost
from benchmarks.timing import MIN_REPEATS, CudaEventClock, HostClock, measure
from gpunet.cli import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_quick_run_writes_every_output(quick_run):
    out, measured = quick_run
    assert set(measured) == {"environment", "config", "skipped", "results"}
    assert {"processor", "cores", "python", "numpy", "gpunet", "cuda"} <= set(measured["environment"])
    text = (out / "results.md").read_text()
    assert "## Training throughput" in text and "## Operations" in text
    pytest.importorskip("matplotlib")
    for name in ("throughput.png", "bandwidth.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_quick_run_measures_each_case(quick_run):
    _, measured = quick_run
    quick = Config.quick()
    ops = {(r["op"], r["variant"], r["backend"]) for r in measured["results"] if r["case"] == "op"}
    assert ops == {(op, variant, "numpy") for op in OPS for variant in ("kernel", "expression")}
    train = [r for r in measured["results"] if r["case"] == "train" and r["peer"] == "gpunet"]
    assert {(r["model"], r["batch_size"], r["what"]) for r in train} == {
        (m, b, w) for m in quick.models for b in quick.batch_sizes for w in ("step", "epoch")}
    for record in measured["results"]:
        assert record["median_s"] > 0 and record["repeats"] >= 1
    for record in train:  # after a warm-up call, at least three readings of each
        assert record["repeats"] >= MIN_REPEATS and record["calls"] == 1
        assert record["step_memory_measure"] == "tracemalloc peak"
        assert record["step_memory_bytes"] > 0
    notebook = [r for r in measured["results"] if r.get("peer") == "notebook"]
    assert {r["model"] for r in notebook} == set(quick.models)
    assert all(r["batch_size"] == 1 and r["samples"] >= 1 for r in notebook)


def test_unusable_backends_are_reported_not_fatal(quick_run):
    _, measured = quick_run
    if measured["environment"]["cuda"]["usable"]:
        pytest.skip("a CUDA device is usable here")
    assert any(reason.startswith("backend cupy:") for reason in measured["skipped"])
    assert "backend cupy:" in markdown(measured)


def test_timing_statistics():
    timing = measure(lambda: None, HostClock(), repeats=5, warmup=2)
    assert timing.repeats == 5 and timing.min_s <= timing.q1_s <= timing.median_s <= timing.q3_s


def test_budget_stops_repeats_early_but_not_before_three():
    import time
    timing = measure(lambda: time.sleep(0.02), HostClock(), repeats=1000, budget_s=0.05)
    assert MIN_REPEATS <= timing.repeats < 10
    assert measure(lambda: time.sleep(0.02), HostClock(), repeats=1000, budget_s=0).repeats == 3
    assert measure(lambda: None, HostClock(), repeats=2, budget_s=0).repeats == 2


def test_cuda_events_time_many_calls_per_pair(monkeypatch):
    """A 2 µs kernel on a stand-in device clock: 500 calls (one more for rounding)
    span each 1 ms reading."""
    import sys
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
    assert timing.calls in (500, 501) and timing.repeats == 5
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


@pytest.mark.parametrize("args, message", [
    (["bench", "--batch-sizes", "0"], "must be at least 1"),
    (["bench", "--backends", "tpu"], "invalid choice: 'tpu'"),
    (["bench", "--models", "resnet"], "invalid choice: 'resnet'"),
])
def test_bad_options(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err

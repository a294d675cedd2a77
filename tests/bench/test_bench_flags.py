"""Doubtful measurements: the load read around each case, and the marks of noisy
and loaded ones, the same in results.md and on the terminal (never how fast)."""
from pathlib import Path

import pytest
from helpers.bench import environment, measured_with, train_record

from gpunet.bench import harness, scaling
from gpunet.bench.flags import LOAD_MARK, NOISY_MARK, LoadWatch, load_limit
from gpunet.bench.outputs import write_outputs
from gpunet.bench.report import markdown
from gpunet.bench.timing import Timing


def loads(*readings):
    """A load reader giving ``readings`` in turn."""
    readings = iter(readings)
    return lambda: next(readings)


@pytest.mark.parametrize("cores, before, after, under_load", [
    (2, 1.4, 1.5, False),     # the benchmark, and other work under half a core
    (2, 1.51, 0.2, True),
    (2, 0.2, 2.7, True),
    (1, 1.4, 1.0, False),     # on one core the benchmark alone makes 1
    (1, 1.6, None, True),
    (4, 3.4, 3.5, False),
    (4, 3.6, 0.0, True),
    (2, None, None, False),   # no load average on this system
])
def test_a_case_runs_under_load_above_the_cores_less_a_half(cores, before, after, under_load):
    result, load = LoadWatch(loads(before, after), cores).around(lambda: "done")
    assert result == "done"
    assert load == {"load_before": before, "load_after": after, "under_load": under_load}
    assert load_limit(cores) == max(cores, 2) - 0.5


class Clock:
    """Gives ``readings`` in turn, seconds per call."""

    def __init__(self, *readings):
        self.readings = iter(readings)

    def time(self, fn, calls=1):
        return next(self.readings)

    def calls_for(self, fn):
        return 1


class Trainer:
    name, device = "stub", "cpu"

    def step(self):
        pass

    epoch = synchronize = step


def tiny_config(**fields):
    config = harness.Config(backends=["numpy"], ops=["relu"], op_sizes=[1000], models=["logistic"],
                            batch_sizes=[1], peers=["notebook"], repeats=3, budget_s=0.01,
                            epoch_samples=16, notebook_budget_s=0.01)
    for name, value in fields.items():
        setattr(config, name, value)
    return config


def test_each_case_keeps_the_load_before_and_after_it():
    said = []
    measured = harness.run(tiny_config(), say=said.append, watch=LoadWatch(loads(
        0.2, 1.4,      # op kernel
        1.6, 0.3,      # op expression: under load
        None, None,    # training step
        0.1, 2.7,      # training epoch: under load
        0.5, 0.5)))    # the notebook
    loaded = {(r["case"], r.get("variant") or r["what"], r["peer"] if "peer" in r else None):
              (r["load_before"], r["load_after"], r["under_load"]) for r in measured["results"]}
    assert loaded == {("op", "kernel", None): (0.2, 1.4, False),
                      ("op", "expression", None): (1.6, 0.3, True),
                      ("train", "step", "gpunet"): (None, None, False),
                      ("train", "epoch", "gpunet"): (0.1, 2.7, True),
                      ("train", "epoch", "notebook"): (0.5, 0.5, False)}
    [op_line] = [line for line in said if line.startswith("op relu")]
    kernel, expression = op_line.split(", expression")
    assert LOAD_MARK not in kernel and expression.endswith(f" {LOAD_MARK} load 1.6")
    [train_line] = [line for line in said if line.startswith("gpunet numpy")]
    step, epoch = train_line.split(", epoch")
    assert LOAD_MARK not in step and epoch.endswith(f" {LOAD_MARK} load 2.7")


def test_the_terminal_line_of_a_case_marks_it_as_results_md_does():
    said = []
    clock = Clock(1.0, 1.0, 1.0, 1.0,   # the step: a warm-up, three readings
                  1.0, 1.0, 1.0, 2.0)   # the epoch: noisy
    records = harness._time_trainer(Trainer(), "deep", 8, clock, tiny_config(), said.append,
                                    LoadWatch(loads(0.1, 0.1, 0.1, 2.04), 2))
    assert said == [f"stub cpu deep batch 8: step 8 samples/s, "
                    f"epoch 16 samples/s {NOISY_MARK} {LOAD_MARK} load 2.0"]
    [step, epoch] = [line for line in markdown(measured_with(records)).splitlines()
                     if line.startswith("| deep | 8 |")]
    assert "| 8 | 1 / 1 / 1 s |" in step
    assert f"| 16 {NOISY_MARK} {LOAD_MARK} load 2.0 | 1 / 1 / 2 s |" in epoch


def test_the_scaling_line_marks_its_measurements(monkeypatch):
    monkeypatch.setattr(scaling, "mpi_launcher", lambda: Path("mpiexec"))
    monkeypatch.setattr(scaling, "unavailable", lambda: "no hosts in this test")
    monkeypatch.setattr(scaling, "time_epochs", lambda comm, samples, epochs: Timing([1.0] * 3, 1))
    monkeypatch.setattr(scaling, "run_ranks", lambda *args: {
        "epoch_s": [0.5, 0.5, 0.9], "blas_threads": 1,
        "allreduce_s": {"deep": [1e-5] * 3, "wide": [1e-4] * 3}})
    said = []
    one, two, *_ = scaling.scaling_results(2, 64, 3, [], said.append, LoadWatch(loads(1.9, 1.0), 2))
    assert (one["load_before"], one["load_after"], one["under_load"]) == (1.9, 1.0, True)
    assert "under_load" not in two  # the ranks are themselves the load
    assert said == [f"scaling deep batch 128: 1 process 64 samples/s {LOAD_MARK} load 1.9, "
                    f"2 ranks 128 samples/s {NOISY_MARK} (2.00x, efficiency 100%); "
                    "allreduce deep 10 µs, wide 100 µs",
                    "skipping the allreduce between 2 hosts: no hosts in this test"]


def loaded_record(what, before, after, under_load):
    return train_record(what, [1.0, 1.1, 1.2], load_before=before, load_after=after,
                        under_load=under_load)


def test_results_md_says_how_many_ran_under_load_and_marks_them():
    text = markdown(measured_with([loaded_record("step", 0.5, 2.5, True),
                                   loaded_record("epoch", 0.5, 0.5, False)]))
    note = next(line for line in text.splitlines() if line.startswith(LOAD_MARK))
    assert note.startswith(f"{LOAD_MARK} marks the 1 of 2 measurements that ran under load, "
                           "with a 1-minute load average above 1.5 before or after it (on 2 cores")
    [step] = [line for line in text.splitlines() if "| step |" in line]
    [epoch] = [line for line in text.splitlines() if "| epoch |" in line]
    assert f"| 7 {LOAD_MARK} load 2.5 |" in step and LOAD_MARK not in epoch


def test_results_md_says_when_nothing_ran_under_load():
    text = markdown(measured_with([loaded_record("epoch", 0.5, 0.5, False)]))
    assert LOAD_MARK not in text
    assert ("No measurement ran under load: none of the 1 had a 1-minute load average above 1.5 "
            "before or after it") in text


def test_writing_the_results_says_what_their_marks_mean(tmp_path):
    said = []
    measured = measured_with([loaded_record("epoch", 0.5, 2.5, True)])
    write_outputs(measured, tmp_path, say=said.append)
    assert said[-2].startswith("No measurement is noisy")
    assert said[-1].startswith(f"{LOAD_MARK} marks the 1 of 1 measurements that ran under load")


def test_a_missing_library_is_not_installed_not_none():
    text = markdown({"environment": {**environment(), "torch": None, "cupy": None, "numpy": "2.4"},
                     "skipped": [], "results": []})
    assert "NumPy 2.4, CuPy: not installed, PyTorch: not installed" in text
    assert "None" not in text

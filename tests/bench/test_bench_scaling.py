"""gpunet bench --nproc: the epoch on one process and on MPI ranks, the allreduce
cost, their rows, and the reasons they are skipped (never how fast)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.bench import measured_with
from helpers.cli import fails, gpunet_cli

from gpunet.bench import harness, scaling
from gpunet.bench.outputs import write_outputs
from gpunet.bench.flags import NOISY_MARK
from gpunet.bench.report import markdown
from gpunet.bench.timing import Timing
from gpunet.cli import main
from gpunet.distributed.local_hosts import PREFIX, unavailable

DEEP = 784 * 30 + 30 + 30 * 10 + 10 + 10 * 10 + 10        # the gradient sizes of the models
WIDE = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
SAMPLES = 256
LAUNCHER = scaling.mpi_launcher()
NO_HOSTS = unavailable()  # why two hosts cannot be made here, or None
HOSTS_SKIPPED = [] if NO_HOSTS is None else [f"allreduce between 2 hosts: {NO_HOSTS}"]


@pytest.fixture(scope="module")
def ranks_said():
    """A scaling run on 2 real ranks, and nothing else, through the harness: what it
    measured and the lines it said."""
    if isinstance(LAUNCHER, str):
        pytest.skip(f"no MPI ranks: {LAUNCHER}")
    config = harness.Config(backends=[], peers=[], nproc=2, epoch_samples=SAMPLES, repeats=6)
    lines = []
    return harness.run(config, say=lines.append), lines


@pytest.fixture(scope="module")
def ranks_run(ranks_said):
    return ranks_said[0]


def by_case(measured, case):
    return [r for r in measured["results"] if r["case"] == case]


def test_the_epoch_is_timed_in_one_process_and_on_the_ranks(ranks_run):
    assert ranks_run["skipped"] == HOSTS_SKIPPED and ranks_run["config"]["nproc"] == 2
    one, two = sorted(by_case(ranks_run, "scaling"), key=lambda r: r["ranks"])
    assert (one["ranks"], two["ranks"]) == (1, 2)
    for record in (one, two):
        assert (record["model"], record["batch_size"], record["samples"]) == ("deep", 128, SAMPLES)
        assert record["repeats"] == 3 and all(t > 0 for t in record["times_s"])
        assert record["samples_per_s"] == pytest.approx(SAMPLES / record["median_s"])
        assert record["samples_per_s"] > 0
    assert "speedup" not in one
    assert two["speedup"] == pytest.approx(one["median_s"] / two["median_s"])
    assert two["efficiency"] == pytest.approx(two["speedup"] / 2)
    assert two["speedup"] > 0 and two["efficiency"] > 0


def test_each_rank_uses_its_share_of_the_cores_for_blas(ranks_run):
    [two] = [r for r in by_case(ranks_run, "scaling") if r["ranks"] == 2]
    assert two["blas_threads"] == max(1, os.cpu_count() // 2)


def test_the_allreduce_of_each_gradient_is_timed_200_times_on_the_ranks(ranks_run):
    reduced = by_case(ranks_run, "allreduce")
    assert [(r["model"], r["ranks"], r["elements"], r["bytes"]) for r in reduced] == [
        ("deep", 2, DEEP, 4 * DEEP), ("wide", 2, WIDE, 4 * WIDE)]
    for record in reduced:
        assert record["dtype"] == "float32" and record["repeats"] == 200
        assert 0 < record["min_s"] <= record["median_s"] <= record["max_s"]


def test_the_rows_are_written_to_json_and_markdown(ranks_run, tmp_path):
    write_outputs(ranks_run, tmp_path, say=lambda line: None)
    written = json.loads((tmp_path / "results.json").read_text())
    assert {r["case"] for r in written["results"]} == {"scaling", "allreduce"} | (
        set() if NO_HOSTS else {scaling.ALLREDUCE_HOSTS})
    lines = (tmp_path / "results.md").read_text().splitlines()
    assert "## Data-parallel scaling (samples/s, median)" in lines
    [two] = [r for r in by_case(ranks_run, "scaling") if r["ranks"] == 2]
    [row] = [line for line in lines if line.startswith("| 2 | ")]
    assert row.endswith(f"| {two['speedup']:.2f}x | {two['efficiency']:.0%} |")
    rows = [line.split(" | ")[:4] for line in lines if line.startswith(("| deep |", "| wide |"))]
    shared = [[f"| {model}", "2", "1 host (shared memory)", f"{n:,}"]
              for model, n in (("deep", DEEP), ("wide", WIDE))]
    tcp = [] if NO_HOSTS else [[f"| {model}", "2", "2 hosts (TCP, 1 a host)", f"{n:,}"]
                               for model, n in (("deep", DEEP), ("wide", WIDE))]
    assert rows == shared + tcp


@pytest.mark.skipif(NO_HOSTS is not None, reason=f"no two hosts here: {NO_HOSTS}")
def test_the_allreduce_between_two_hosts_is_timed_and_said_beside_shared_memory(ranks_said):
    measured, lines = ranks_said
    between = by_case(measured, scaling.ALLREDUCE_HOSTS)
    assert [(r["model"], r["ranks"], r["elements"], r["hosts"], r["ranks_per_host"], r["link"])
            for r in between] == [("deep", 2, DEEP, 2, 1, "tcp"), ("wide", 2, WIDE, 2, 1, "tcp")]
    for record in between:
        assert record["dtype"] == "float32" and record["repeats"] == 200
        assert 0 < record["min_s"] <= record["median_s"] <= record["max_s"]
    [line] = [line for line in lines if "between 2 hosts" in line]
    shared = by_case(measured, "allreduce")
    assert line == ("allreduce min / median / max, 2 ranks: between 2 hosts (TCP, 1 a host) "
                    + ", ".join(scaling._spread(r) for r in between)
                    + "; in shared memory (1 host) "
                    + ", ".join(scaling._spread(r) for r in shared))
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{PREFIX}{os.getpid()}-" not in namespaces  # the hosts are gone


def test_where_no_hosts_can_be_made_one_line_says_why(monkeypatch):
    monkeypatch.setattr(scaling, "unavailable", lambda: "not root: network namespaces and veth "
                        "pairs need root")
    skipped, lines = [], []
    assert scaling.host_allreduce(Path("mpiexec"), 2, [], skipped, lines.append) == []
    assert skipped == ["allreduce between 2 hosts: not root: network namespaces and veth pairs "
                       "need root"]
    assert lines == ["skipping the allreduce between 2 hosts: not root: network namespaces and "
                     "veth pairs need root"]


def epoch_record(ranks, times, **fields):
    return {**scaling._epoch_record(Timing(times, 1), 1000, ranks, 1), **fields}


def test_markdown_rows_of_the_epochs_and_the_allreduces():
    text = markdown(measured_with([
        epoch_record(1, [1.0, 1.1, 1.2]),
        epoch_record(2, [0.6, 0.6, 0.9], speedup=1.1 / 0.6, efficiency=1.1 / 1.2),
        {"case": "allreduce", "model": "deep", "ranks": 2, "dtype": "float32",
         "elements": DEEP, "bytes": 4 * DEEP, **Timing([30e-6, 35e-6, 80e-6], 1).record()},
        {"case": scaling.ALLREDUCE_HOSTS, "model": "deep", "ranks": 4, "dtype": "float32",
         "elements": DEEP, "bytes": 4 * DEEP, **Timing([100e-6, 110e-6, 120e-6], 1).record()}]))
    lines = text.splitlines()
    assert "| 1 | 1 | 1,000 | 909 | 1 / 1.1 / 1.2 s | 18% |  |  |" in lines
    assert f"| 2 | 1 | 1,000 | 1,667 {NOISY_MARK} | 600 / 600 / 900 ms | 50% | 1.83x | 92% |" \
        in lines
    assert (f"| deep | 2 | 1 host (shared memory) | 23,970 | 30 / 35 / 80 µs {NOISY_MARK} "
            "| 143% |") in lines
    assert "| deep | 4 | 2 hosts (TCP, 2 a host) | 23,970 | 100 / 110 / 120 µs | 18% |" in lines
    assert "2 of 4 measurements" in text


def test_nothing_scaled_no_section():
    assert "Data-parallel" not in markdown(measured_with([]))


# -- where the ranks cannot run ------------------------------------------------------------

def executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_mpiexec_is_looked_for_beside_python_first_then_on_path(tmp_path, monkeypatch):
    pytest.importorskip("mpi4py")
    on_path = executable(tmp_path / "path" / "mpiexec")
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setattr("sys.executable", str(tmp_path / "venv" / "bin" / "python"))
    assert scaling.mpi_launcher() == on_path
    beside = executable(tmp_path / "venv" / "bin" / "mpiexec")
    assert scaling.mpi_launcher() == beside


def test_without_mpiexec_the_scaling_is_skipped_saying_why(tmp_path, monkeypatch):
    pytest.importorskip("mpi4py")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "bin" / "python"))
    skipped = []
    assert scaling.scaling_results(2, 64, 3, skipped, say=lambda line: None) == []
    assert skipped == [f"scaling on 2 ranks: no mpiexec beside {tmp_path / 'bin' / 'python'} "
                       "or on PATH; pip install 'gpunet[mpi]'"]
    assert f"- {skipped[0]}" in markdown({**measured_with([]), "skipped": skipped})


def test_without_mpi4py_the_scaling_is_skipped_saying_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    skipped = []
    assert scaling.scaling_results(2, 64, 3, skipped, say=lambda line: None) == []
    [reason] = skipped
    assert reason.startswith("scaling on 2 ranks: mpi4py is not installed (")


def fake_mpiexec(tmp_path: Path, monkeypatch, script: str) -> Path:
    launcher = executable(tmp_path / "mpiexec", "#!/bin/sh\n" + script)
    monkeypatch.setattr(scaling, "mpi_launcher", lambda: launcher)
    return launcher


def test_ranks_that_fail_are_skipped_with_their_error(tmp_path, monkeypatch):
    launcher = fake_mpiexec(tmp_path, monkeypatch, "echo 'Traceback (most recent call last):'\n"
                            "echo 'ValueError: a rank failed' >&2\necho 'Abort(1)'\nexit 1\n")
    skipped = []
    assert scaling.scaling_results(2, 64, 3, skipped, say=lambda line: None) == []
    assert skipped == [f"scaling on 2 ranks: {launcher} -n 2 failed (exit 1): "
                       "ValueError: a rank failed"]


def test_ranks_that_each_run_alone_are_refused(tmp_path, monkeypatch):
    """An mpiexec of another MPI than mpi4py's: each rank a world of its own."""
    launcher = fake_mpiexec(tmp_path, monkeypatch, 'shift 2\nexec "$@"\n')
    skipped = []
    assert scaling.scaling_results(2, 64, 3, skipped, say=lambda line: None) == []
    assert skipped == [f"scaling on 2 ranks: {launcher} -n 2 started ranks that each saw 1 "
                       "rank(s): is it the MPI that mpi4py was built for?"]


def test_ranks_that_outlast_their_time_are_killed_with_their_children(tmp_path, monkeypatch):
    pid_file = tmp_path / "child.pid"
    fake_mpiexec(tmp_path, monkeypatch,
                 f"sleep 600 >/dev/null 2>&1 &\necho $! > {pid_file}\nwait\n")
    monkeypatch.setattr(scaling, "START_S", 1.0)
    monkeypatch.setattr(scaling, "SLOWDOWN", 0)
    skipped = []
    assert scaling.scaling_results(2, 64, 3, skipped, say=lambda line: None) == []
    assert skipped == [f"scaling on 2 ranks: {tmp_path / 'mpiexec'} -n 2 did not finish in 1 s"]
    child = int(pid_file.read_text())
    try:
        wait_until_gone(lambda: running(child), "the ranks' child")
    finally:
        if running(child):
            os.kill(child, signal.SIGKILL)


def test_real_ranks_that_outlast_their_time_are_ended(tmp_path, monkeypatch):
    if isinstance(LAUNCHER, str):
        pytest.skip(f"no MPI ranks: {LAUNCHER}")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # the ranks' command lines name it
    assert scaling.run_ranks(LAUNCHER, 2, 60_000, 100, timeout_s=2) == (
        f"{LAUNCHER} -n 2 did not finish in 2 s")
    try:
        wait_until_gone(lambda: launched(tmp_path), "the ranks")
    finally:
        for pid in launched(tmp_path):
            os.kill(pid, signal.SIGTERM)


def launched(folder: Path) -> list[int]:
    """The running processes whose command lines name ``folder``."""
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and running(int(pid))
            and str(folder).encode() in command_line(int(pid))]


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


# -- the option --------------------------------------------------------------------------------

@pytest.mark.parametrize("given, nproc", [([], None), (["--nproc", "3"], 3)])
def test_nproc_reaches_the_run(monkeypatch, tmp_path, given, nproc):
    seen = []
    monkeypatch.setattr(harness, "run", lambda config: seen.append(config) or {
        "results": [], "skipped": ["stand-in"]})
    assert main(["bench", "--quick", *given, "--out", str(tmp_path / "out")]) == 2
    assert [config.nproc for config in seen] == [nproc]


@pytest.mark.parametrize("options, message", [
    (["--nproc", "1"], "argument --nproc: must be at least 2, got 1"),
    (["--nproc", "0"], "argument --nproc: must be at least 2, got 0"),
    (["--nproc", "two"], "argument --nproc: expected an integer, got 'two'"),
    (["--nproc", "129"], "gpunet: error: --nproc 129: at most 128 ranks, as each takes a share "
                         "of every batch of 128 and of the 2,048 samples of an epoch"),
    (["--nproc", "3", "--epoch-samples", "2"], "gpunet: error: --nproc 3: at most 2 ranks"),
])
def test_bad_nproc_is_a_usage_error_and_writes_nothing(tmp_path, options, message):
    done = gpunet_cli("bench", "--quick", *options, "--out", str(tmp_path / "out"))
    fails(done, 2, message)
    assert done.stdout == "" and not (tmp_path / "out").exists()


def wait_until_gone(alive, what: str, seconds: float = 10) -> None:
    """Return once ``alive()`` is false; fail if ``what`` is still alive after ``seconds``."""
    deadline = time.monotonic() + seconds
    while alive():
        assert time.monotonic() < deadline, f"{what} outlived their time limit"
        time.sleep(0.05)

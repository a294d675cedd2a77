"""A command's threads: by default the cores other processes leave free, looked at
before a command starts and after each epoch; --threads N on the commands that
compute; the run's header line says what is in use."""
import os
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import gpunet
from gpunet import threads as threads_module
from gpunet.backend.host_threads import threads_in_use
from gpunet.cli import main
from gpunet.cli.commands import build_parser
from gpunet.threads import (CpuReading, Threads, busy_elsewhere, chosen_threads, cpu_reading,
                            free_cores)

CORES = len(os.sched_getaffinity(0))


@pytest.fixture(autouse=True)
def _restored_threads():
    """Each test's limits undone after it (threadpoolctl restores what it found)."""
    with threadpool_limits(limits=None):
        yield


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def readings(*elsewhere: float):
    """A stand-in for cpu_reading: one second between readings, in which other
    processes keep ``elsewhere[i]`` cores busy and this one half a core."""
    clock, busy, own = 0.0, 0.0, 0.0
    yield CpuReading(clock, busy, own)
    for cores in elsewhere:
        clock, busy, own = clock + 1, busy + cores + 0.5, own + 0.5
        yield CpuReading(clock, busy, own)


@pytest.mark.parametrize("elsewhere, cores, free", [
    (0.0, 2, 2), (0.25, 2, 2), (0.3, 2, 1), (1.0, 2, 1), (1.3, 2, 1), (2.0, 2, 1),
    (0.0, 16, 16), (3.1, 16, 13), (3.3, 16, 12), (40.0, 16, 1)])
def test_a_core_busy_more_than_a_quarter_of_the_time_is_taken(elsewhere, cores, free):
    assert free_cores(elsewhere, cores) == free


def test_busy_elsewhere_is_the_machine_s_work_less_this_process_s():
    before, after = CpuReading(10.0, 100.0, 4.0), CpuReading(12.0, 103.0, 5.0)
    assert busy_elsewhere(before, after) == pytest.approx(1.0)  # (3 - 1) / 2 s
    assert busy_elsewhere(after, after) == 0.0
    assert busy_elsewhere(before, CpuReading(12.0, 101.0, 6.0)) == 0.0  # never below 0


def test_auto_looks_before_it_starts_and_follows_the_load_at_each_update():
    pauses = []
    seen = readings(0.0, 1.0, 1.0, 0.0)
    threads = Threads(None, read=lambda: next(seen), pause=pauses.append)
    assert pauses == [threads_module.FIRST_LOOK_S]
    assert threads.auto and threads.count == CORES
    if CORES < 2:
        pytest.skip("one core: nothing to follow")
    assert threads.update() and threads.count == CORES - 1
    assert not threads.update() and threads.count == CORES - 1
    assert threads.update() and threads.count == CORES
    assert str(threads).endswith(f" (auto: {CORES} of {CORES} cores free)")


def test_auto_takes_one_thread_where_the_cores_cannot_be_read():
    threads = Threads(None, read=lambda: None, pause=lambda s: None)
    assert threads.count == 1
    assert not threads.update()


def test_a_number_is_kept_whatever_the_load():
    threads = Threads(2, read=lambda: pytest.fail("a fixed count reads nothing"))
    assert threads.count == 2 and not threads.update()
    assert str(threads) == "2"


@pytest.mark.parametrize("ranks_here", [1, 2, 64])
def test_a_rank_takes_its_share_of_its_machine_s_cores(ranks_here):
    ranks = SimpleNamespace(size=4, local_size=ranks_here)
    assert chosen_threads("auto", ranks).count == max(1, CORES // ranks_here)
    assert not chosen_threads("auto", ranks).auto
    assert chosen_threads(1, ranks).count == 1


def test_a_process_alone_is_auto_unless_given_a_number():
    assert chosen_threads("auto", SimpleNamespace(size=1, local_size=1)).auto
    assert chosen_threads("auto").auto
    assert chosen_threads(1).count == 1 and not chosen_threads(1).auto


def test_the_cores_another_process_keeps_busy_are_seen():
    if cpu_reading() is None:
        pytest.skip("no /proc/stat here")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        before = cpu_reading()
        time.sleep(0.5)
        assert busy_elsewhere(before, cpu_reading()) > 0.5
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.parametrize("argv, threads", [(["--threads", "1"], 1), (["--threads", "2"], 2)])
def test_the_header_line_names_the_threads_in_use(capsys, argv, threads):
    assert main(["xor", "--backend", "numpy", "--epochs", "1", "--quiet", *argv]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(rf"backend: numpy; threads: {threads}: products in row blocks, "
                        rf"BLAS 1 \(\w+\), OpenMP .+", header)
    assert blas_threads() == {1}
    assert gpunet.get_backend("numpy").products.workers == threads


def test_by_default_the_header_line_says_how_many_cores_are_free(capsys, monkeypatch):
    seen = readings(1.0)
    monkeypatch.setattr(threads_module, "cpu_reading", lambda: next(seen))
    assert main(["xor", "--backend", "numpy", "--epochs", "1", "--quiet"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    free = max(1, CORES - 1)
    assert header.endswith(f"; threads: {free} (auto: {free} of {CORES} cores free): "
                           f"products in row blocks, {threads_in_use()}")
    assert gpunet.get_backend("numpy").products.workers == free


def test_training_looks_at_the_cores_again_after_each_epoch(capsys, monkeypatch, fashion_dir):
    if CORES < 2:
        pytest.skip("one core: nothing to follow")
    seen = readings(0.0, 1.0, 1.0)  # before the start, after epochs 1 and 2
    monkeypatch.setattr(threads_module, "cpu_reading", lambda: next(seen))
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(fashion_dir),
                 "--train-subset", "256", "--test-subset", "64", "--epochs", "2",
                 "--backend", "numpy", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"(auto: {CORES} of {CORES} cores free): products in row blocks" in lines[0]
    changed = [i for i, line in enumerate(lines) if line.startswith("threads: ")]
    assert len(changed) == 1 and lines[changed[0] - 1].startswith("epoch 1:")
    assert lines[changed[0]] == (f"threads: {CORES - 1} (auto: {CORES - 1} of {CORES} cores "
                                 f"free): products in row blocks, {threads_in_use()}, as the other "
                                 "processes' use of the cores changed")


@pytest.mark.parametrize("command", [["train"], ["eval", "run.ckpt"], ["bench"],
                                     ["xor"], ["fizzbuzz"]])
def test_every_computing_command_takes_threads(command):
    assert build_parser().parse_args([*command, "--threads", "3"]).threads == 3
    assert build_parser().parse_args([*command, "--threads", "auto"]).threads == "auto"
    assert build_parser().parse_args(command).threads == "auto"


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_threads_below_one_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["train", "--threads", value])
    assert done.value.code == 2
    assert "--threads" in capsys.readouterr().err

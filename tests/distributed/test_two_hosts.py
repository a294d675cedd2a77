"""Ranks on two machines, made on this one (``gpunet.distributed.local_hosts``: two
network namespaces joined by a veth pair), launched as on a cluster with a hostfile
and ``-ppn``: the gradients cross over TCP, each host's ranks share that host's
cores, the run is one process's, and a killed host, a partition or a stopped rank
ends every process. Skipped, saying why, where the namespaces cannot be made."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from gpunet.checkpoint import load_checkpoint
from gpunet.cli.commands import build_parser
from gpunet.distributed import local_hosts
from gpunet.distributed.local_hosts import LocalHosts, unavailable
from helpers.cli import COMMAND, gpunet_cli
from helpers.mpi import ONE_THREAD
from helpers.parallel_fit import BATCH, RUNNER, SAMPLES, assert_same_run, mpi_missing, one_process

LAYOUT = str(Path(__file__).parents[1] / "helpers" / "host_layout.py")
REASON = mpi_missing() or unavailable()
needs_hosts = pytest.mark.skipif(REASON is not None, reason=f"no two hosts here: {REASON}")
DATA = ["--dataset", "fashion-mnist", "--train-subset", "1000", "--test-subset", "300",
        "--batch-size", "50", "--backend", "numpy", "--quiet"]
SMALL, LONG = [*DATA, "--epochs", "2"], [*DATA, "--epochs", "1000"]  # LONG: ended by the test
DEEP_GRADIENT = 4 * (784 * 30 + 30 + 30 * 10 + 10 + 10 * 10 + 10)  # float32 bytes
COLLECTIVE_TIMEOUT_S = 5


def has_collective_timeout() -> bool:
    """Whether ``gpunet train`` takes --collective-timeout (issue 24 item 2)."""
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args(["train", "--collective-timeout", "5"])
        except SystemExit:
            return False
    return True


needs_timeout = pytest.mark.skipif(not has_collective_timeout(),
                                   reason="needs --collective-timeout (issue 24 item 2)")


def test_why_no_hosts_can_be_made_is_one_line(monkeypatch):
    monkeypatch.setattr(local_hosts.shutil, "which", lambda tool: None)
    assert unavailable() == ("no ip or unshare command here (iproute2, util-linux) to make "
                             "namespaces")
    monkeypatch.undo()
    monkeypatch.setattr(local_hosts.os, "geteuid", lambda: 1000)
    assert unavailable() == "not root: network namespaces and veth pairs need root"


@needs_hosts
def test_the_hosts_and_their_processes_are_removed_after_a_failure_too():
    abandoned = f"{local_hosts.PREFIX}{dead_pid()}-000000-a"
    subprocess.run(["ip", "netns", "add", abandoned], check=True)
    with pytest.raises(RuntimeError, match="on purpose"):
        with LocalHosts() as hosts:
            assert abandoned not in listed()  # a dead process's hosts go when new ones are made
            assert set(hosts.names) <= set(listed().split())
            sleeper = subprocess.Popen(["ip", "netns", "exec", hosts.names[1], "sleep", "60"])
            seconds_until(lambda: hosts.processes(1) == [sleeper.pid], 5)
            raise RuntimeError("on purpose")
    assert sleeper.wait(5) == -signal.SIGKILL
    assert not set(hosts.names) & set(listed().split())
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert not any(veth in links for veth in hosts.veths)


@needs_hosts
def test_a_failure_while_making_the_hosts_leaves_nothing(monkeypatch):
    hosts, ip = LocalHosts(), local_hosts._ip

    def fails_to_move(*args: str) -> str:
        if args[:3] == ("link", "set", hosts.veths[0]):
            raise local_hosts.LocalHostsError("cannot move it, on purpose")
        return ip(*args)
    monkeypatch.setattr(local_hosts, "_ip", fails_to_move)
    with pytest.raises(local_hosts.LocalHostsError, match="on purpose"):
        with hosts:
            pass
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert not any(veth in links for veth in hosts.veths)
    assert not set(hosts.names) & set(listed().split())
    assert not hosts.folder.exists()


def dead_pid() -> int:
    """The process id of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def listed() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def hosts() -> Iterator[LocalHosts]:
    """Two hosts for the runs that leave them as they were."""
    with LocalHosts() as made:
        yield made


def run(hosts: LocalHosts, ppn: int, ranks: int, *command: str,
        timeout: float = 60) -> tuple[subprocess.CompletedProcess, int]:
    """``command`` on ``ranks`` ranks, ``ppn`` a host: how it ended and the bytes the link
    carried meanwhile."""
    before = hosts.carried()
    done = subprocess.run(hosts.mpiexec("-ppn", str(ppn), "-n", str(ranks), *command),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, **ONE_THREAD})
    return done, hosts.carried() - before


def start(hosts: LocalHosts, *command: str) -> subprocess.Popen:
    """``command`` on 2 ranks on each host, running."""
    return subprocess.Popen(hosts.mpiexec("-ppn", "2", "-n", "4", *command), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env={**os.environ, **ONE_THREAD})


def seconds_until(condition: Callable[[], bool], limit: float) -> float:
    """How long ``condition`` took to hold, polled; fails after ``limit`` seconds."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < limit, f"not within {limit} s"
        time.sleep(0.05)
    return time.monotonic() - began


def none_left(hosts: LocalHosts) -> bool:
    return not hosts.processes(0) and not hosts.processes(1)


@pytest.fixture(scope="module")
def library(hosts, tmp_path_factory) -> dict[int, tuple[dict[str, np.ndarray], int]]:
    """``fit`` with a communicator (``helpers/parallel_fit.py``, float64) on 4 ranks, by
    ranks a host (2: two hosts of 2; 4: all on one): rank 0's results, the link's bytes."""
    folder = tmp_path_factory.mktemp("two-hosts")
    runs = {}
    for ppn in (2, 4):
        out = folder / f"ppn{ppn}.npz"
        done, carried = run(hosts, ppn, 4, sys.executable, "-m", "mpi4py", RUNNER, str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        with np.load(out) as written:
            runs[ppn] = dict(written), carried
    return runs


@needs_hosts
def test_the_gradients_cross_between_the_hosts_over_tcp(library):
    (two_hosts, crossing), (_, within) = library[2], library[4]
    steps = 2 * -(-SAMPLES // BATCH)  # 2 epochs
    gradients = steps * two_hosts["params"].nbytes  # each step's sum leaves each host once
    print(f"the link carried {crossing:,} bytes for 2 hosts of 2 ranks, {within:,} for 4 ranks "
          f"on one host; the gradients are {gradients:,} bytes")
    assert crossing >= gradients, (crossing, gradients)
    assert within < gradients / 10, (within, gradients)


@needs_hosts
def test_two_hosts_of_two_ranks_train_as_one_process(library):
    params, history = one_process(dtype="float64", epochs=2)
    for got, _ in library.values():
        assert int(got["size"]) == 4
        print(f"largest difference from one process: {abs(got['params'] - params).max():.1e} "
              f"(parameters), {abs(got['history'] - history).max():.1e} (history)")
        assert_same_run(got, params, history, tolerance=1e-12)


@needs_hosts
@pytest.mark.parametrize("ppn, ranks", [(2, 4), (1, 2), (2, 3)])
def test_each_host_s_ranks_share_that_host_s_cores(hosts, ppn, ranks):
    done, _ = run(hosts, ppn, ranks, sys.executable, "-m", "mpi4py", LAYOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    cores = len(os.sched_getaffinity(0))
    expected = []
    for rank in range(ranks):
        host, local_rank = divmod(rank, ppn)
        local_size = min(ppn, ranks - host * ppn)
        expected.append({"rank": rank, "host": hosts.names[host], "local_rank": local_rank,
                         "local_size": local_size, "cores": cores,
                         "threads": max(1, cores // local_size)})
    assert json.loads(done.stdout) == expected


@needs_hosts
def test_gpunet_train_on_two_hosts_matches_one_process(fashion_dir, hosts, tmp_path):
    spread, alone = tmp_path / "spread.json", tmp_path / "alone.json"
    done, crossing = run(hosts, 2, 4, *COMMAND, "train", *SMALL, "--metrics", str(spread))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("test accuracy:") == 1
    print(f"gpunet train on 2 hosts: the link carried {crossing:,} bytes")
    assert crossing >= 2 * 1000 // 50 * DEEP_GRADIENT
    assert gpunet_cli("train", *SMALL, "--metrics", str(alone), env=ONE_THREAD).returncode == 0
    ours, theirs = (json.loads(path.read_text()) for path in (spread, alone))
    assert len(ours["history"]) == len(theirs["history"]) == 2
    for a, b in zip(ours["history"], theirs["history"]):
        for key in ("loss", "accuracy", "test_loss", "test_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-5), key
    assert ours["test_accuracy"] == pytest.approx(theirs["test_accuracy"], rel=1e-5)
    print("largest history difference from one process: " + str(max(
        abs(a[key] - b[key]) for a, b in zip(ours["history"], theirs["history"])
        for key in ("loss", "accuracy", "test_loss", "test_accuracy"))))


@contextlib.contextmanager
def first_epoch_saved(ckpt: Path, *options: str) -> Iterator[tuple[LocalHosts, subprocess.Popen]]:
    """Hosts of their own running a long ``gpunet train`` on 2 + 2 ranks, once it has
    saved its first epoch to ``ckpt``; what is left of it ended on leaving."""
    with LocalHosts() as hosts:
        process = start(hosts, *COMMAND, "train", *LONG, "--save", str(ckpt), *options)
        try:
            seconds_until(lambda: ckpt.exists() or process.poll() is not None, 60)
            assert process.poll() is None, process.communicate()
            yield hosts, process
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()


@needs_hosts
def test_a_killed_host_ends_every_rank_within_10_s(fashion_dir, tmp_path):
    with first_epoch_saved(tmp_path / "run.ckpt") as (hosts, process):
        victims = hosts.ranks(1)
        assert len(victims) == 2
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        began = time.monotonic()
        stdout, stderr = process.communicate(timeout=10)
        seconds_until(lambda: none_left(hosts), 10 - (time.monotonic() - began))
        print(f"a killed host: every process gone in {time.monotonic() - began:.2f} s")
    assert process.returncode != 0
    assert hosts.names[1] in stdout + stderr, stdout + stderr  # Hydra's "RUNNING AT" line


@needs_hosts
@needs_timeout
@pytest.mark.parametrize("how", ["link down", "SIGSTOP"])
def test_a_partition_or_a_stopped_rank_ends_every_process(fashion_dir, tmp_path, how):
    ckpt = tmp_path / "run.ckpt"
    limit = COLLECTIVE_TIMEOUT_S + 30
    with first_epoch_saved(ckpt, "--collective-timeout", str(COLLECTIVE_TIMEOUT_S)) as (
            hosts, process):
        if how == "link down":
            hosts.set_link(up=False)
        else:
            os.kill(hosts.ranks(1)[0], signal.SIGSTOP)
        began = time.monotonic()
        _, stderr = process.communicate(timeout=limit)
        seconds_until(lambda: none_left(hosts), limit - (time.monotonic() - began))
        print(f"{how}: every process gone in {time.monotonic() - began:.1f} s; {stderr}")
    assert process.returncode != 0
    load_checkpoint(ckpt, "numpy")

"""A collective that does not finish ends the run (--collective-timeout): the
waiter's back-off, the roll call that names the missing rank, and a rank stopped
with SIGSTOP under ``gpunet train --nproc 2``."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpunet.distributed import deadline
from helpers.cli import COMMAND
from helpers.mpi import MPIEXEC, ONE_THREAD, mpiexec



def _missing_mpi() -> str | None:
    try:
        import mpi4py.MPI  # noqa: F401
    except ImportError:
        return "needs mpi4py with an MPI library: pip install 'gpunet[mpi]'"
    return None if MPIEXEC else "no mpiexec: pip install 'gpunet[mpi]'"


MISSING_MPI = _missing_mpi()
needs_mpi = pytest.mark.skipif(MISSING_MPI is not None, reason=MISSING_MPI or "")


class Clock:
    """A clock that moves only when the waiter sleeps, or by ``per_call`` a reading."""

    def __init__(self, per_call: float = 0.0) -> None:
        self.now, self.per_call, self.naps = 0.0, per_call, []

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


def done_after(tests: int):
    """A request's Test that completes at its ``tests``-th call, counting the calls."""
    calls = []

    def test() -> bool:
        calls.append(1)
        return len(calls) >= tests
    return test, calls


def test_a_collective_done_at_once_is_tested_once_and_never_waits():
    clock, pauses = Clock(), []
    test, calls = done_after(1)
    assert deadline.wait(test, 10.0, clock=clock, sleep=clock.sleep,
                         pause=lambda: pauses.append(1))
    assert len(calls) == 1 and clock.naps == [] and pauses == []


def test_the_waiter_polls_then_yields_the_core_then_naps_growing_up_to_the_cap():
    """1 us a reading: back-to-back tests for BUSY_S, tests with the core given up
    between them until SPIN_S, then naps of an eighth of the time waited, at most
    MAX_NAP_S; ``idle`` is called before each nap."""
    clock, pauses, idle = Clock(per_call=1e-6), [], []
    busy = round(deadline.BUSY_S / 1e-6)
    spins = round(deadline.SPIN_S / 1e-6) - busy
    test, calls = done_after(busy + spins + 500)
    assert deadline.wait(test, None, lambda: idle.append(1), clock=clock, sleep=clock.sleep,
                         pause=lambda: pauses.append(1))
    naps = clock.naps
    assert abs(len(pauses) - spins) <= 10
    assert abs(len(calls) - len(pauses) - len(naps) - 2 - busy) <= 10
    assert naps[0] == pytest.approx(deadline.SPIN_S / deadline.NAP_SHARE, rel=0.01)
    assert all(b >= a for a, b in zip(naps, naps[1:])) and max(naps) == deadline.MAX_NAP_S
    assert len(idle) == len(naps)


def test_the_waiter_gives_up_at_the_deadline():
    clock = Clock(per_call=1e-6)
    test, calls = done_after(10**9)
    assert not deadline.wait(test, 2.0, clock=clock, sleep=clock.sleep, pause=lambda: None)
    assert 2.0 <= clock.now <= 2.0 + deadline.MAX_NAP_S + 1e-5
    assert len(clock.naps) < 2.0 / deadline.MAX_NAP_S + 100  # naps, not a spin


def test_a_two_second_stall_costs_the_waiter_little_cpu():
    """Real time and sleeps: a 2 s wait uses well under 2 s of CPU (a spin would use 2)."""
    end = time.monotonic() + 2.0
    cpu = time.process_time()
    assert deadline.wait(lambda: time.monotonic() >= end, None)
    assert time.process_time() - cpu < 0.2


def timed_out_line(answers: dict, hosts: list[str] | None, size: int = 4) -> str:
    """MPICommunicator's line for rank 0 of ``size`` whose 7th collective timed out
    after 3 s, the roll call answered with ``answers``."""
    from gpunet.distributed.comm import MPICommunicator
    comm = MPICommunicator.__new__(MPICommunicator)  # no MPI: the roll call stood in for
    comm.rank, comm.size, comm.timeout, comm._count, comm._hosts = 0, size, 3.0, 7, hosts
    comm._roll_call = lambda: answers
    return comm._timed_out("the test's sums")


def test_the_line_names_the_ranks_that_did_not_answer_and_where_the_others_wait():
    hosts = ["a", "a", "b", "b"]
    assert timed_out_line({1: (7, "the test's sums")}, hosts) == (
        "the test's sums did not finish within 3 s: ranks 2 (host b), 3 (host b) did not answer")
    assert timed_out_line({1: (7, "x"), 2: (6, "the gradients' allreduce")}, None) == (
        "the test's sums did not finish within 3 s: rank 3 did not answer; rank 2 is waiting "
        "in the gradients' allreduce")
    assert timed_out_line({1: (7, "x")}, ["a", "b"], size=2) == (
        "the test's sums did not finish within 3 s: every rank is waiting in it")


LATE_RANK = """
import sys, time
import numpy as np
from gpunet.distributed import CollectiveTimeout, MPICommunicator
comm = MPICommunicator(timeout=float(sys.argv[1]))
grads = np.ones(23_860, np.float32)
comm.allreduce(grads)  # a first collective: the ranks' hosts become known
if comm.rank == 1:
    time.sleep(2.0)
cpu = time.process_time()
try:
    with comm.named("the gradients' allreduce"):
        comm.allreduce(grads)
except CollectiveTimeout as exc:
    print(f"rank {comm.rank}: {exc}", flush=True)
    time.sleep(0.5)  # as launch.finish's FORWARD_S: mpiexec reads the line before the abort
    comm.mpi.Abort(1)  # (MPICH 5's returns, Hydra ending every rank soon after)
else:
    print(f"rank {comm.rank}: done, {time.process_time() - cpu:.3f} s of CPU, sum {grads[0]:g}")
"""


@needs_mpi
@pytest.mark.parametrize("timeout", ["10", "0.5"])
def test_a_late_rank_is_waited_for_without_a_spin_or_named_once_the_timeout_passes(
        timeout, tmp_path):
    """Rank 1 comes 2 s late: within a 10 s limit, rank 0 waits using little CPU; with
    0.5 s, rank 0 raises CollectiveTimeout naming rank 1 and its host (asleep, it does
    not answer the roll call)."""
    script = tmp_path / "late.py"
    script.write_text(LATE_RANK)
    done = mpiexec("-n", "2", sys.executable, "-m", "mpi4py", str(script), timeout, timeout=60)
    lines = sorted(done.stdout.splitlines())
    if timeout == "10":
        assert done.returncode == 0, done.stdout + done.stderr
        assert [line.split(",")[0] for line in lines] == ["rank 0: done", "rank 1: done"]
        assert float(lines[0].split(", ")[1].split()[0]) < 0.5
        assert lines[0].endswith("sum 4")
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert len(lines) == 1 and re.fullmatch(
            r"rank 0: the gradients' allreduce did not finish within 0\.5 s: "
            r"rank 1 \(host .+\) did not answer", lines[0]), lines


# -- gpunet train --nproc 2, one rank stopped -----------------------------------------
SMALL = ["--dataset", "fashion-mnist", "--train-subset", "400", "--test-subset", "100",
         "--batch-size", "50", "--epochs", "10000", "--backend", "numpy", "--quiet",
         "--threads", "1"]
TIMEOUT_S = 3


def ranks_of(mark: str) -> dict[int, int]:
    """The processes whose environment holds ``mark``, by their PMI_RANK."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"GPUNET_TEST_MARK={mark}".encode() in environ:
            rank = [item for item in environ if item.startswith(b"PMI_RANK=")]
            if rank:
                found[int(rank[0].split(b"=")[1])] = int(entry.name)
    return found


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is no zombie (one that ended, not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@needs_mpi
@pytest.mark.parametrize("stopped", [1, 0])
def test_a_stopped_rank_ends_the_run_in_one_line_and_the_checkpoint_loads(
        fashion_dir, tmp_path, stopped):
    """SIGSTOP to one rank once epoch 1 is saved: every process is gone within the
    timeout + 30 s, exit 1, one line naming the timeout and the stopped rank (said by
    rank 0, or after launch's grace by rank 1 when rank 0 is the one stopped)."""
    ckpt, mark = tmp_path / "run.ckpt", f"{os.getpid()}-{stopped}"
    process = subprocess.Popen(
        [*COMMAND, "train", *SMALL, "--nproc", "2", "--collective-timeout", str(TIMEOUT_S),
         "--save", str(ckpt)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, env={**os.environ, **ONE_THREAD, "GPUNET_TEST_MARK": mark})
    ranks: dict[int, int] = {}
    try:
        started = time.monotonic()
        while not ckpt.exists() and process.poll() is None and time.monotonic() - started < 60:
            time.sleep(0.05)
        ranks = ranks_of(mark)
        assert sorted(ranks) == [0, 1] and process.poll() is None, process.communicate()
        os.kill(ranks[stopped], signal.SIGSTOP)
        stopped_at = time.monotonic()
        out, err = process.communicate(timeout=TIMEOUT_S + 30)
        ended = time.monotonic() - stopped_at
    finally:
        left = [pid for pid in ranks.values() if running(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
    assert left == [], "ranks left running"
    assert process.returncode == 1, err
    assert TIMEOUT_S <= ended < TIMEOUT_S + 30
    lines = err.splitlines()
    assert len(lines) == 1, err
    who = "" if stopped else "rank 1 of 2: "
    assert re.fullmatch(
        rf"{who}gpunet: error: .+ did not finish within {TIMEOUT_S} s: rank {stopped} "
        rf"\(host .+\) did not answer \(--collective-timeout\); the last good checkpoint is "
        rf"{re.escape(str(ckpt))}", lines[0]), lines[0]
    import gpunet
    assert gpunet.load_checkpoint(ckpt, backend="numpy").epoch >= 1

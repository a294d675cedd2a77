"""The launcher's watch over mpiexec and its ranks (gpunet.distributed.launch_watch):
mpiexec's output passed on, the rank that ended a run named, and no rank left
running once mpiexec has ended."""
import os
import signal
import subprocess
import sys

import pytest

from gpunet.distributed import launch_watch
from gpunet.distributed.launch_watch import LaunchWatch


def watched(tmp_path, ranks, output=""):
    """A LaunchWatch of an "mpiexec" that has already ended, having written ``output``,
    and of ``ranks`` (processes) as ranks 0, 1, ... that wrote their pids into the
    ranks' folder."""
    for rank, process in enumerate(ranks):
        (tmp_path / str(rank)).write_text(str(process.pid))
    mpiexec = subprocess.Popen([sys.executable, "-c", f"print({output!r}, end='')"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    mpiexec.wait()
    watch = LaunchWatch(mpiexec, tmp_path, len(ranks))
    watch._watch_new_ranks()
    return watch


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfds: ranks are not watched")
def test_a_rank_still_running_after_mpiexec_ended_is_killed_after_the_wait(tmp_path,
                                                                           monkeypatch):
    """A rank SIGSTOPped (mpiexec's SIGTERM would leave it stopped) is killed once
    GONE_S has passed; a rank that ends within it is waited for and not killed."""
    monkeypatch.setattr(launch_watch, "GONE_S", 1.0)
    stopped = subprocess.Popen(["sleep", "60"])
    ending = subprocess.Popen(["sleep", "0.1"])
    try:
        os.kill(stopped.pid, signal.SIGSTOP)
        watch = watched(tmp_path, [stopped, ending])
        watch.run()
        assert stopped.wait(timeout=5) == -signal.SIGKILL
        assert ending.wait(timeout=5) == 0
        assert watch.ended == [1]  # ended of itself, before the wait was over
    finally:
        for process in (stopped, ending):
            if process.poll() is None:
                process.kill()
                process.wait()


BANNER = """
===================================================================================
=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES
=   PID {pid} RUNNING AT vm
=   EXIT CODE: 9
=   CLEANING UP REMAINING PROCESSES
===================================================================================
"""


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfds: ranks are not watched")
@pytest.mark.parametrize("banner", [True, False])
def test_the_rank_that_ended_the_run_is_the_one_mpiexec_names(tmp_path, capfd, banner):
    """Rank 1 was killed, yet rank 0 (which mpiexec then killed) finished ending
    first: the rank is the one whose PID MPICH's mpiexec names, its output passed
    on; without that line, the first seen to end."""
    first, killed = subprocess.Popen(["sleep", "0"]), subprocess.Popen(["sleep", "0.3"])
    try:
        first.wait()
        watch = watched(tmp_path, [first, killed], BANNER.format(pid=killed.pid) if banner else "")
        watch.run()
    finally:
        killed.kill()
        killed.wait()
    assert watch.ended == [0, 1]
    assert watch.first == (1 if banner else 0)
    assert capfd.readouterr().out == (BANNER.format(pid=killed.pid) if banner else "")


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfds: ranks are not watched")
@pytest.mark.parametrize("codes, seen_first, named, killed", [
    ("0,9", 0, 1, 1),  # one kill: that rank, whichever pidfd came first
    ("9,0", 1, 0, 0),
    ("9,9", 1, 0, 1),  # mpiexec's own kill of rank 0 recorded too: the first seen of the two
    ("9,9", 0, 0, 0),
    ("0,0", 1, 0, 0),  # no kill among the codes: the rank the report names
])
def test_mpiexecs_exit_codes_name_the_killed_rank_and_are_not_passed_on(tmp_path, capfd, codes,
                                                                        seen_first, named,
                                                                        killed):
    """MPICH's mpiexec, asked, ends with each rank's wait status: the one rank
    killed by a signal is the one; where the codes say several were, the first of
    those seen to end; the codes' line is read, not passed on."""
    late, early = subprocess.Popen(["sleep", "0.3"]), subprocess.Popen(["sleep", "0"])
    ranks = [early, late] if seen_first == 0 else [late, early]
    output = BANNER.format(pid=ranks[named].pid) + f"[mpiexec@vm] Exit codes: [vm] {codes}\n"
    try:
        early.wait()
        watch = watched(tmp_path, ranks, output)
        watch.run()
    finally:
        late.kill()
        late.wait()
    assert watch.ended[0] == seen_first
    assert watch.statuses == [int(code) for code in codes.split(",")]
    assert watch.first == killed
    assert capfd.readouterr().out == BANNER.format(pid=ranks[named].pid)


def test_a_line_that_may_be_the_exit_codes_is_held_back_until_it_ends(tmp_path):
    """Standard output passes on as it comes, but a last line that may yet become
    the exit codes' (a start of "[mpiexec@"): held back until its end says which."""
    watch = watched(tmp_path, [])
    chunks = [b"epoch 1\r50%", b"|\n[mpi", b"exec@vm] Sending Ctrl-C\n[mpiexec@vm] Exit co",
              b"des: [vm] 0,9\n"]
    passed = [watch._without_exit_codes(watch.held + chunk, ended=False) for chunk in chunks]
    assert passed == [b"epoch 1\r50%", b"|\n", b"[mpiexec@vm] Sending Ctrl-C\n", b""]
    assert watch.statuses == [0, 9] and watch.held == b""
    assert watch._without_exit_codes(b"[mpiexec@vm] cut off", ended=True) == b"[mpiexec@vm] cut off"

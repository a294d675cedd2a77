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
@pytest.mark.parametrize("killed", [0, 1])
def test_mpiexec_naming_a_lower_rank_than_the_one_first_seen_to_end_is_a_bound(tmp_path,
                                                                                killed):
    """mpiexec names the lowest rank it recorded as killed, and may record the ranks
    it killed itself so: the rank is the first seen to end at or above the one it
    names. Named rank 0: rank 1, seen to end first, is the one (its kill took rank 0
    with it); rank 0, seen first, is."""
    late, early = subprocess.Popen(["sleep", "0.3"]), subprocess.Popen(["sleep", "0"])
    ranks = [late, early] if killed == 1 else [early, late]
    try:
        early.wait()
        watch = watched(tmp_path, ranks, BANNER.format(pid=ranks[0].pid))
        watch.run()
    finally:
        late.kill()
        late.wait()
    assert watch.ended == ([1, 0] if killed == 1 else [0, 1])
    assert watch.first == killed

"""How a process finds out it is one rank of a launch (gpunet.distributed.launch)."""
import io
import os
import subprocess
import sys

import pytest

from gpunet.distributed import launch


@pytest.mark.parametrize("environ, found", [
    ({}, None),
    ({"PMI_SIZE": "1"}, None),  # a launch of one is the single process
    ({"PMI_SIZE": "4"}, ("PMI_SIZE", 4)),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, ("OMPI_COMM_WORLD_SIZE", 2)),
    ({"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "3"}, ("SLURM_STEP_NUM_TASKS", 8)),
    ({"SLURM_NTASKS": "8"}, None),  # an allocation, not a launch: sbatch sets it for one process
    ({"PMI_SIZE": "many"}, None),
])
def test_the_launchers_rank_variables(environ, found):
    assert launch.launched_size(environ) == found


def test_mpiexec_is_looked_for_beside_python_first(monkeypatch, tmp_path):
    (tmp_path / "mpiexec").write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    assert launch.mpiexec_path() == str(tmp_path / "mpiexec")
    (tmp_path / "mpiexec").unlink()
    monkeypatch.setenv("PATH", str(tmp_path))
    assert launch.mpiexec_path() is None


def test_a_single_process_reports_and_finishes_as_before(capsys):
    assert launch.report("bad", 2) == 2
    assert capsys.readouterr().err == "gpunet: error: bad\n"
    assert launch.finish(2) == 2 and not launch.several()


def test_info_says_how_ranks_would_run(capsys, monkeypatch):
    from gpunet.cli import info, main
    monkeypatch.setattr(info, "explain_ranks", lambda: "several ranks: (stand-in)")
    monkeypatch.setattr(info, "nccl_module", lambda: "CuPy is not installed (test)")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "several ranks: (stand-in)\n" in out
    assert "GPU ranks: through the host, no NCCL: CuPy is not installed (test)\n" in out


def test_explain_ranks_names_mpi_and_mpiexec_or_the_extra(monkeypatch):
    line = launch.explain_ranks()
    try:
        import mpi4py.MPI  # noqa: F401
    except ImportError:
        assert line.startswith("several ranks: unavailable: no usable mpi4py (")
        assert line.endswith("pip install 'gpunet[mpi]'")
        return
    import mpi4py
    from mpi4py import MPI
    library = " ".join(MPI.Get_library_version().splitlines()[0].split())
    assert launch.mpi_library() == library and "  " not in library
    assert line == (f"several ranks: mpi4py {mpi4py.__version__} with {library}, mpiexec "
                    f"{launch.mpiexec_path()}")
    monkeypatch.setattr(launch, "mpiexec_path", lambda: None)
    assert launch.explain_ranks().endswith("mpiexec not found (pip install 'gpunet[mpi]')")


def test_each_rank_gets_its_share_of_the_cores_and_only_rank_0_prints(tmp_path):
    pytest.importorskip("mpi4py.MPI", reason="needs mpi4py with an MPI library: pip install "
                        "'gpunet[mpi]'")
    if launch.mpiexec_path() is None:
        pytest.skip("no mpiexec: pip install 'gpunet[mpi]'")
    script = tmp_path / "rank.py"
    script.write_text(
        "import os, sys\n"
        "from threadpoolctl import threadpool_info\n"
        "from gpunet.distributed import launch\n"
        "import gpunet\n"
        "from gpunet.threads import chosen_threads\n"
        "comm = launch.join(2)\n"
        "backend = gpunet.get_backend('numpy')\n"
        "backend.use_threads(chosen_threads('auto', comm).count)\n"
        "blas = {p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}\n"
        "cores = len(os.sched_getaffinity(0))\n"
        "shared = (backend.products.workers, blas) == (max(1, cores // 2), {1})\n"
        "print(comm.rank, comm.size, shared or (backend.products.workers, blas))\n"
        "print('rank', comm.rank, 'on stderr', file=sys.stderr)\n")
    done = subprocess.run([launch.mpiexec_path(), "-n", "2", sys.executable, "-m", "mpi4py",
                           str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == ["0 2 True", ""]
    assert done.stderr == "rank 0 on stderr\n"


# -- a rank of several, in this process: launch's world stood in for ----------------

class FakeWorld:
    """What launch needs of an MPICommunicator, with its aborts recorded."""

    def __init__(self, rank, size):
        self.rank, self.size, self.local_rank, self.local_size = rank, size, rank, size
        self.aborted = []
        self.mpi = type("Mpi", (), {"Abort": staticmethod(self.aborted.append)})


@pytest.fixture
def as_rank(monkeypatch):
    """Make this process rank R of N for launch, once the ranks have agreed on the run;
    sleeps and fd 2's redirection recorded."""
    monkeypatch.setattr(launch, "_world", None)
    monkeypatch.setattr(launch, "_agreed", True)
    monkeypatch.setattr(launch, "_together", False)
    monkeypatch.setattr(launch, "_unsaid", None)
    events = []
    monkeypatch.setattr(launch.time, "sleep", lambda s: events.append(("sleep", s)))
    monkeypatch.setattr(launch, "_silence_standard_error", lambda: events.append("silenced"))
    monkeypatch.setattr(launch.os, "_exit", lambda status: events.append(("exit", status)))

    def make(rank, size=2):
        world = FakeWorld(rank, size)
        monkeypatch.setattr(launch, "_world", world)
        return world, events
    return make


@pytest.mark.parametrize("rank, status, waits", [(0, 2, False), (1, 2, True), (1, 3, True),
                                                 (1, 130, True), (1, 1, False), (0, 1, False)])
def test_a_failing_rank_ends_every_rank_with_its_status(as_rank, rank, status, waits):
    """Rank 0 aborts once mpiexec has had time to pass on what it said; another rank
    waits first where rank 0 meets the same failure and says why; fd 2 is silenced so
    MPICH adds no line of its own; the process ends at once (MPICH's abort returns)."""
    world, events = as_rank(rank)
    launch.finish(status)
    assert world.aborted == [status]
    assert events == [*([("sleep", launch.GRACE_S)] if waits else []),
                      ("sleep", launch.FORWARD_S), "silenced", ("exit", status)]


@pytest.mark.parametrize("status", [130, 143, 129, 3])
def test_a_shared_failure_rank_0_did_not_meet_is_said_by_the_rank_after_the_grace(
        as_rank, monkeypatch, status):
    """SIGINT to rank 1 alone: rank 0 does not end the ranks, so rank 1 says it."""
    world, events = as_rank(1)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", stderr)
    monkeypatch.setattr(launch, "_silence_standard_error",
                        lambda: events.append(("silenced after", stderr.getvalue())))
    launch.report("interrupted", status)
    assert stderr.getvalue() == ""
    launch.finish(status)
    said = "rank 1 of 2: gpunet: error: interrupted\n"
    assert events == [("sleep", launch.GRACE_S), ("sleep", launch.FORWARD_S),
                      ("silenced after", said), ("exit", status)]
    assert world.aborted == [status] and stderr.getvalue() == said


def test_a_timed_out_collective_on_rank_1_waits_for_rank_0_to_say_it(as_rank, monkeypatch):
    """Every rank waiting in a stuck collective times out: rank 1's line (status 1,
    ``shared``) waits out rank 0's grace, said only if rank 0 has not ended the ranks."""
    world, events = as_rank(1)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", stderr)
    monkeypatch.setattr(launch, "_silence_standard_error",
                        lambda: events.append(("silenced after", stderr.getvalue())))
    assert launch.report("an allreduce did not finish within 3 s", 1, shared=True) == 1
    assert stderr.getvalue() == ""
    launch.finish(1)
    said = "rank 1 of 2: gpunet: error: an allreduce did not finish within 3 s\n"
    assert events == [("sleep", launch.GRACE_S), ("sleep", launch.FORWARD_S),
                      ("silenced after", said), ("exit", 1)]
    assert world.aborted == [1]


def test_a_rank_that_succeeded_aborts_nothing(as_rank):
    world, events = as_rank(1)
    assert launch.finish(0) == 0 and world.aborted == [] and events == []
    assert launch.several()


@pytest.mark.parametrize("rank, status, said", [
    (0, 2, "gpunet: error: bad\n"), (0, 1, "gpunet: error: bad\n"),
    (1, 1, "rank 1 of 2: gpunet: error: bad\n"), (1, 2, ""), (1, 3, ""), (1, 130, ""),
    (1, 143, ""), (1, 129, "")])
def test_each_failure_is_said_once(as_rank, monkeypatch, rank, status, said):
    as_rank(rank)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", stderr)
    assert launch.report("bad", status) == status
    assert stderr.getvalue() == said


def test_a_crash_on_a_rank_names_the_rank_on_each_line(as_rank, monkeypatch):
    as_rank(1)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", stderr)
    try:
        raise KeyError("x")
    except KeyError:
        assert launch.crashed() == 1
    lines = stderr.getvalue().splitlines()
    assert lines[0] == "rank 1: Traceback (most recent call last):"
    assert lines[-1] == "rank 1: KeyError: 'x'" and all(l.startswith("rank 1: ") for l in lines)


@pytest.fixture
def launched(monkeypatch, as_rank):
    """join() under a launch of 2 ranks (PMI_SIZE=2), MPI's world stood in for."""
    from gpunet.distributed import comm
    monkeypatch.setattr(launch, "launched_size", lambda: ("PMI_SIZE", 2))
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # restored after a rank > 0 silenced it
    monkeypatch.setattr(sys, "stderr", sys.stderr)

    def world_of(rank, size=2):
        monkeypatch.setattr(comm, "MPICommunicator", lambda: FakeWorld(rank, size))
    return world_of


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rank_joins_and_only_rank_0_prints(launched, rank):
    launched(rank)
    stdout = sys.stdout
    world = launch.join(None)
    assert (world.rank, world.size) == (rank, 2) and launch._world is world
    assert (sys.stdout is stdout) == (rank == 0)
    if rank:
        assert sys.stdout.name == sys.stderr.name == os.devnull
        print("said by rank 1: nowhere")  # written, to /dev/null
        print("warned by rank 1: nowhere", file=sys.stderr)


def test_a_world_of_another_size_is_another_mpi(launched):
    launched(0, size=1)
    with pytest.raises(launch.LaunchError) as error:
        launch.join(None)
    assert str(error.value).startswith(
        "started as one of 2 ranks (PMI_SIZE=2), but MPI sees 1: that mpiexec belongs to "
        f"another MPI than mpi4py's ({launch.mpi_library()}); use ")
    assert launch._world is None


def test_nproc_must_be_the_launch_s_size_and_is_said_once(launched):
    launched(1)
    with pytest.raises(launch.LaunchError, match=r"^--nproc 3, but the launch started 2 ranks$"):
        launch.join(3)
    assert launch._world is not None  # so that rank 1 leaves saying it to rank 0


def test_a_launch_without_an_mpi_library_is_named(launched, monkeypatch):
    from gpunet.distributed import comm

    def missing():
        raise ImportError("libmpi.so.12: cannot open shared object file")
    monkeypatch.setattr(comm, "MPICommunicator", missing)
    with pytest.raises(launch.LaunchError) as error:
        launch.join(None)
    assert str(error.value) == ("started as one of 2 ranks (PMI_SIZE=2), but mpi4py cannot "
                                "load an MPI library (libmpi.so.12: cannot open shared object "
                                "file): pip install 'gpunet[mpi]'")


def test_outside_a_launch_join_is_the_single_process(monkeypatch, as_rank):
    monkeypatch.setattr(launch, "launched_size", lambda: None)
    world = launch.join(None)
    assert (world.rank, world.size) == (0, 1) and not launch.several()


# -- before the ranks agree on the run: every failure and setting goes through agree ----

class GatheringWorld(FakeWorld):
    """A rank whose allgather returns the other ranks' outcomes as given (this rank's
    own in its place), recording what it sent."""

    def __init__(self, rank, others):
        super().__init__(rank, len(others) + 1)
        self.others, self.sent = others, []

    def gather(self, value):
        self.sent.append(value)
        return [*self.others[:self.rank], value, *self.others[self.rank:]]


@pytest.fixture
def before_agreeing(monkeypatch, as_rank):
    """Rank R of a launch whose ranks have not agreed yet; standard error captured."""
    monkeypatch.setattr(launch, "_agreed", False)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", stderr)

    def make(rank, *others):
        world = GatheringWorld(rank, list(others))
        monkeypatch.setattr(launch, "_world", world)
        return world, stderr
    return make


SETTINGS = {"--epochs": 1, "--model": "deep"}


def test_ranks_that_agree_go_on_and_the_last_agreement_ends_the_gathering(before_agreeing):
    world, stderr = before_agreeing(0, ("settings", SETTINGS))
    launch.agree(SETTINGS)
    assert not launch._agreed
    launch.agree(SETTINGS, final=True)
    assert launch._agreed and len(world.sent) == 2 and stderr.getvalue() == ""
    launch.agree(SETTINGS)  # nothing gathered once agreed
    assert len(world.sent) == 2


@pytest.mark.parametrize("rank", [0, 1])
def test_a_setting_that_differs_stops_every_rank_rank_0_saying_it(before_agreeing, rank):
    theirs = {"--epochs": 2, "--model": "deep"}
    world, stderr = before_agreeing(rank, ("settings", SETTINGS if rank else theirs))
    with pytest.raises(launch.RanksStopped) as stopped:
        launch.agree(SETTINGS if rank == 0 else theirs)
    assert stopped.value.status == 2 and launch._together
    assert stderr.getvalue() == ("" if rank else
                                 "gpunet: error: the ranks were started differently: rank 1 of "
                                 "2 has --epochs 2 where rank 0 has 1; start every rank with the "
                                 "same options and data\n")
    assert launch.finish(2) == 2 and world.aborted == [2]  # no grace: it was said


def test_a_rank_that_failed_is_named_by_rank_0_and_ends_every_rank(before_agreeing):
    world, stderr = before_agreeing(0, ("failed", "bad option", 2), ("settings", SETTINGS))
    with pytest.raises(launch.RanksStopped) as stopped:
        launch.agree(SETTINGS)
    assert stopped.value.status == 2
    assert stderr.getvalue() == "rank 1 of 3: gpunet: error: bad option\n"


def test_a_failure_every_rank_meets_is_said_once_without_a_rank(before_agreeing):
    world, stderr = before_agreeing(0, ("failed", "bad option", 2))
    assert launch.report("bad option", 2) == 2
    assert world.sent == [("failed", "bad option", 2)]
    assert stderr.getvalue() == "gpunet: error: bad option\n"


def test_a_rank_that_fails_says_it_through_rank_0(before_agreeing):
    world, stderr = before_agreeing(1, ("settings", SETTINGS), ("failed", "other", 1))
    assert launch.report("bad option", 2) == 2  # the first failing rank's status
    assert stderr.getvalue() == ""  # rank 0 says: rank 1's and rank 2's lines


def test_a_rank_that_fails_before_it_joined_joins_to_say_so(launched, monkeypatch):
    """An argparse error on one rank: it joins the launch, so the others end too."""
    from gpunet.distributed import comm
    monkeypatch.setattr(launch, "_agreed", False)
    world = GatheringWorld(1, [("settings", SETTINGS)])
    monkeypatch.setattr(comm, "MPICommunicator", lambda: world)
    assert launch.report("bad option", 2) == 2
    assert launch._world is world and world.sent == [("failed", "bad option", 2)]



def fake_mpiexec(folder, version: str) -> str:
    """An mpiexec whose --version prints ``version``; anything else fails the test."""
    path = folder / "mpiexec"
    path.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && echo '{version}' && exit 0\nexit 99\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("version, root, allowed, refused", [
    ("mpiexec (OpenRTE) 4.1.6", True, {}, True),  # Open MPI 4
    ("mpiexec (Open MPI) 5.0.3", True, {}, True),  # Open MPI 5
    ("mpiexec (OpenRTE) 4.1.6", True, {"OMPI_ALLOW_RUN_AS_ROOT": "1"}, True),  # one is not both
    ("mpiexec (OpenRTE) 4.1.6", True, dict.fromkeys(launch.OPEN_MPI_AS_ROOT, "1"), False),
    ("mpiexec (OpenRTE) 4.1.6", False, {}, False),  # not root
    ("HYDRA build details:\n    Version: 4.3.0", True, {}, False),  # MPICH
])
def test_open_mpis_mpiexec_as_root_is_refused_unless_allowed(monkeypatch, tmp_path, version, root,
                                                            allowed, refused):
    monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)
    assert launch.refuses_root(fake_mpiexec(tmp_path, version), allowed) == refused


@pytest.mark.parametrize("version, options", [
    ("HYDRA build details:\n    Version: 5.0.2", [launch.EXIT_CODES_OPTION]),  # MPICH
    ("mpiexec (Open MPI) 5.0.3", []),
])
def test_mpichs_mpiexec_is_asked_for_every_ranks_exit_code(tmp_path, version, options):
    """What LaunchWatch reads to name a killed rank; another mpiexec is asked nothing."""
    assert launch.watch_options(fake_mpiexec(tmp_path, version)) == options
    assert launch.watch_options(str(tmp_path / "missing" / "mpiexec")) == []


def test_an_mpiexec_that_cannot_run_is_not_taken_for_a_refusal(monkeypatch, tmp_path):
    """Its own failure to start then says what is wrong, at the launch."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert not launch.refuses_root(str(tmp_path / "missing" / "mpiexec"), {})


def test_nproc_as_root_under_open_mpi_is_one_line_naming_the_way_out(monkeypatch, tmp_path,
                                                                    capsys):
    """gpunet train --nproc 2 starts nothing and exits 2 with one line saying what to do."""
    pytest.importorskip("mpi4py", reason="needs mpi4py: pip install 'gpunet[mpi]'")
    from gpunet.cli import main
    mpiexec = fake_mpiexec(tmp_path, "mpiexec (OpenRTE) 4.1.6")
    monkeypatch.setattr(launch, "mpiexec_path", lambda: mpiexec)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    for name in launch.OPEN_MPI_AS_ROOT:
        monkeypatch.delenv(name, raising=False)
    assert main(["train", "--nproc", "2", "--epochs", "1"]) == 2
    assert capsys.readouterr().err == (
        f"gpunet: error: --nproc 2: Open MPI's mpiexec ({mpiexec}) starts no ranks as root: run "
        "gpunet as another user, or set OMPI_ALLOW_RUN_AS_ROOT=1 and "
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 to allow it\n")

"""How a process finds out it is one rank of a launch (gpunet.distributed.launch)."""
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
    assert line.startswith("several ranks: mpi4py ")
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
        "comm = launch.join(2)\n"
        "threads = {pool['num_threads'] for pool in threadpool_info()}\n"
        "cores = len(os.sched_getaffinity(0))\n"
        "print(comm.rank, comm.size, threads == {max(1, cores // 2)} or threads)\n"
        "print('rank', comm.rank, 'on stderr', file=sys.stderr)\n")
    done = subprocess.run([launch.mpiexec_path(), "-n", "2", sys.executable, "-m", "mpi4py",
                           str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == ["0 2 True", ""]
    assert done.stderr == "rank 0 on stderr\n"

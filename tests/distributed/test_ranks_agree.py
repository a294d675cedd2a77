"""Ranks started differently, or failing before they joined, through the real
console script under mpiexec: every rank ends, with one line naming the rank and
the setting, or the rank and its error, and no rank is left waiting."""
from __future__ import annotations

import pytest

from helpers.cli import COMMAND
from helpers.mpi import MPIEXEC, mpiexec

pytest.importorskip("mpi4py.MPI", reason="needs mpi4py with an MPI library: pip install "
                    "'gpunet[mpi]'")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec: pip install 'gpunet[mpi]'")
SMALL = ["--dataset", "fashion-mnist", "--train-subset", "500", "--test-subset", "100",
         "--batch-size", "50", "--epochs", "1", "--backend", "numpy", "--quiet",
         "--threads", "1"]


def two_ranks(rank_0: list[str], rank_1: list[str]):
    """``gpunet train SMALL`` with each rank's own extra options."""
    return mpiexec("-n", "1", *COMMAND, "train", *SMALL, *rank_0, ":",
                   "-n", "1", *COMMAND, "train", *SMALL, *rank_1, timeout=60)


def one_line(done, status: int) -> str:
    assert done.returncode == status, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("option, zero, one", [
    ("--epochs", "1", "2"), ("--train-subset", "500", "600"), ("--model", "deep", "wide"),
    ("--batch-size", "50", "25"), ("--lr", "0.1", "0.2")])
def test_a_setting_that_differs_is_named(fashion_dir, option, zero, one):
    """(--model also changes the default --lr, named with it.)"""
    line = one_line(two_ranks([option, zero], [option, one]), 2)
    assert line.startswith(f"gpunet: error: the ranks were started differently: rank 1 of 2 has "
                           f"{option} {one} where rank 0 has {zero}"), line
    assert line.endswith("; start every rank with the same options and data")


def test_a_bad_option_on_one_rank_ends_every_rank(fashion_dir):
    line = one_line(two_ranks([], ["--bogus"]), 2)
    assert line == ("rank 1 of 2: gpunet: error: unrecognized arguments: --bogus "
                    "(gpunet train -h lists the options)")


def test_a_missing_data_dir_on_rank_0_ends_every_rank(fashion_dir, tmp_path):
    line = one_line(two_ranks(["--data-dir", str(tmp_path / "absent")], []), 2)
    assert line == (f"rank 0 of 2: gpunet: error: argument --data-dir: directory "
                    f"'{tmp_path / 'absent'}' does not exist (gpunet train -h lists the options)")


def test_a_bad_option_on_every_rank_is_said_once(fashion_dir):
    line = one_line(mpiexec("-n", "2", *COMMAND, "train", *SMALL, "--bogus", timeout=60), 2)
    assert line == "gpunet: error: unrecognized arguments: --bogus (gpunet train -h lists the options)"


def test_a_rank_that_cannot_load_mpi_ends_every_rank(fashion_dir, tmp_path):
    """mpi4py missing on one host: that rank never reaches MPI_Init, where the other
    waited for ever; it asks mpiexec to end the job (PMI's abort) after its line."""
    fake = tmp_path / "no-mpi" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('libmpi.so.12: cannot open shared "
                                      "object file')\n")
    done = mpiexec("-n", "1", *COMMAND, "train", *SMALL, ":",
                   "-n", "1", "-env", "PYTHONPATH", str(fake.parent), *COMMAND, "train", *SMALL,
                   timeout=60)
    line = one_line(done, 2)
    assert line == ("rank 1 of 2: gpunet: error: started as one of 2 ranks (PMI_SIZE=2), but "
                    "mpi4py cannot load an MPI library (libmpi.so.12: cannot open shared object "
                    "file): pip install 'gpunet[mpi]'")

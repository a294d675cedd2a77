"""BLAS and OpenMP threads: one per process by default, --threads N on the commands
that compute, and the run's header line says what is in use."""
import os
import re
from types import SimpleNamespace

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from gpunet.cli import main
from gpunet.cli.commands import build_parser
from gpunet.threads import DEFAULT_THREADS, limit_threads, threads_for, threads_in_use

ALONE = SimpleNamespace(size=1, local_size=1)


@pytest.fixture(autouse=True)
def _restored_threads():
    """Each test's limits undone after it (threadpoolctl restores what it found)."""
    with threadpool_limits(limits=None):
        yield


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_a_process_alone_takes_one_thread_unless_asked():
    assert DEFAULT_THREADS == 1
    assert threads_for(None, ALONE) == 1
    assert threads_for(3, ALONE) == 3


@pytest.mark.parametrize("ranks_here", [1, 2, 64])
def test_a_rank_takes_its_share_of_its_machine_s_cores(ranks_here):
    cores = len(os.sched_getaffinity(0))
    ranks = SimpleNamespace(size=4, local_size=ranks_here)
    assert threads_for(None, ranks) == max(1, cores // ranks_here)
    assert threads_for(2, ranks) == 2


@pytest.mark.parametrize("threads", [1, 2])
def test_limit_threads_is_what_the_words_say(threads):
    limit_threads(threads)
    assert blas_threads() == {threads}
    assert re.fullmatch(rf"BLAS {threads} \(\w+\), OpenMP (none|.+)", threads_in_use())


@pytest.mark.parametrize("argv, threads", [([], 1), (["--threads", "2"], 2)])
def test_the_header_line_names_the_threads_in_use(capsys, argv, threads):
    limit_threads(2 if threads == 1 else 1)  # not already what the command sets
    assert main(["xor", "--backend", "numpy", "--epochs", "1", "--quiet", *argv]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("backend: numpy; threads: BLAS ")
    assert header.endswith(threads_in_use())
    assert blas_threads() == {threads}


@pytest.mark.parametrize("command", [["train"], ["eval", "run.ckpt"], ["bench"],
                                     ["xor"], ["fizzbuzz"]])
def test_every_computing_command_takes_threads(command):
    assert build_parser().parse_args([*command, "--threads", "3"]).threads == 3


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_threads_below_one_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["train", "--threads", value])
    assert done.value.code == 2
    assert "--threads" in capsys.readouterr().err

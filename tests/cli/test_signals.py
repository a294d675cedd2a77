"""SIGTERM and SIGHUP end a run as Ctrl-C does: one line naming the last good
checkpoint, the status 128 + the signal's number, and no temporary left behind."""
from __future__ import annotations

import importlib.util
import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest

import gpunet
from gpunet.cli.signals import Stopped, ending, stopping
from gpunet.distributed.launch import mpiexec_path
from helpers.cli import COMMAND, SMALL


@pytest.mark.parametrize("signum, said, status", [
    (signal.SIGTERM, "terminated (SIGTERM)", 143), (signal.SIGHUP, "hung up (SIGHUP)", 129)])
def test_a_signal_mid_save_leaves_the_last_checkpoint_and_no_temporary(fashion_dir, tmp_path,
                                                                        signum, said, status):
    """The signal arrives while epoch 2's checkpoint is half written (deterministically: the
    writer sends it to itself), the only moment a temporary exists."""
    ckpt = tmp_path / "run.ckpt"
    code = textwrap.dedent(f"""
        import contextlib, os, sys
        import gpunet.checkpoint as checkpoint
        from gpunet.cli import main
        real, saves = checkpoint.replacing, []

        @contextlib.contextmanager
        def replacing(path):
            with real(path) as file:
                saves.append(path)
                if len(saves) == 2:
                    file.write(b"half a checkpoint")
                    os.kill(os.getpid(), {int(signum)})
                yield file
        checkpoint.replacing = replacing
        sys.exit(main({["train", *SMALL, "--epochs", "3", "--save", str(ckpt)]!r}))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stderr) == (
        status, f"gpunet: error: {said}; the last good checkpoint is {ckpt}\n"), done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]
    assert gpunet.load_checkpoint(ckpt, gpunet.get_backend("numpy")).epoch == 1


def test_sigterm_to_a_training_process_is_one_line(fashion_dir, tmp_path):
    """The real signal, from outside, once the first epoch has been saved (its line
    comes before its save, so: once the second epoch says it is done)."""
    ckpt = tmp_path / "run.ckpt"
    with subprocess.Popen([*COMMAND, "train", *SMALL, "--epochs", "1000", "--save", str(ckpt)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL) as process:
        for line in process.stdout:
            if line.startswith("epoch 2:"):
                break
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    assert (process.returncode, err) == (
        143, f"gpunet: error: terminated (SIGTERM); the last good checkpoint is {ckpt}\n")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_stopping_raises_stopped_inside_and_puts_the_handlers_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as stopped, stopping():
        signal.raise_signal(signal.SIGHUP)
    assert isinstance(stopped.value, KeyboardInterrupt)
    assert ending(stopped.value) == ("hung up (SIGHUP)", 129)
    assert ending(KeyboardInterrupt()) == ("interrupted", 130)
    assert signal.getsignal(signal.SIGTERM) is before


# -- a signal to one rank of several, or to the launcher ------------------------------

def rank_pids(launcher: int) -> dict[int, int]:
    """{rank: pid} of the ranks under the process ``launcher`` (mpiexec or gpunet
    train --nproc), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    ranks, todo = {}, list(children.get(launcher, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        rank = [item[len(b"PMI_RANK="):] for item in environ if item.startswith(b"PMI_RANK=")]
        if rank and b"gpunet" in open(f"/proc/{pid}/cmdline", "rb").read():
            ranks[int(rank[0])] = pid
    return ranks


@pytest.mark.parametrize("start, whom, signum, said, status", [
    ("mpiexec", 1, signal.SIGINT, "rank 1 of 2: gpunet: error: interrupted", 130),
    ("mpiexec", 1, signal.SIGTERM, "rank 1 of 2: gpunet: error: terminated (SIGTERM)", 143),
    ("mpiexec", "launcher", signal.SIGTERM, "gpunet: error: terminated (SIGTERM)", 143),
    ("mpiexec", "launcher", signal.SIGINT, "gpunet: error: interrupted", 130),
    ("--nproc", 1, signal.SIGKILL, "gpunet: error: rank 1 of 2 ended without saying why "
     "(mpiexec's exit status 9, as for SIGKILL), and mpiexec ended the others", 9),
    ("--nproc", 0, signal.SIGKILL, "gpunet: error: rank 0 of 2 ended without saying why "
     "(mpiexec's exit status 9, as for SIGKILL), and mpiexec ended the others", 9),
    ("--nproc", 1, signal.SIGINT, "rank 1 of 2: gpunet: error: interrupted", 130),
    ("--nproc", "launcher", signal.SIGTERM, "gpunet: error: terminated (SIGTERM)", 143),
    ("--nproc", "launcher", signal.SIGINT, "gpunet: error: interrupted", 130),
    ("--nproc", "launcher", signal.SIGHUP, "gpunet: error: terminated (SIGTERM)", 143),
])
def test_a_signal_to_one_rank_or_to_the_launcher_is_one_line(fashion_dir, tmp_path, start, whom,
                                                             signum, said, status):
    """A signal to rank 1 alone is said by rank 1 once rank 0 has not ended the run (the
    grace); one to the launcher (mpiexec, or gpunet train --nproc, which passes it on to
    mpiexec, SIGHUP as SIGTERM) reaches every rank and is said once; a rank killed
    without a word is named by the --nproc launcher."""
    if mpiexec_path() is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip("needs mpi4py and mpiexec: pip install 'gpunet[mpi]'")
    ckpt = tmp_path / "run.ckpt"
    command = [*COMMAND, "train", "--nproc", "2"] if start == "--nproc" else \
        [mpiexec_path(), "-n", "2", *COMMAND, "train"]
    # SIGINT at its default in the command, as a terminal's Ctrl-C finds it: a suite run
    # in the background (``pytest &``, nohup) ignores it, and so would what it starts.
    with subprocess.Popen([*command, *SMALL, "--epochs", "1000", "--threads", "1",
                           "--save", str(ckpt)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
                          ) as process:
        for line in process.stdout:
            if line.startswith("epoch 2:"):
                break
        os.kill(process.pid if whom == "launcher" else rank_pids(process.pid)[whom], signum)
        out, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (
        status, f"{said}; the last good checkpoint is {ckpt}\n")


def test_killing_the_nproc_launcher_ends_its_ranks(fashion_dir, tmp_path):
    """SIGKILL to gpunet train --nproc: its mpiexec, in a session of its own, still ends
    with it and ends the ranks, instead of their training on with nobody to stop them."""
    if mpiexec_path() is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip("needs mpi4py and mpiexec: pip install 'gpunet[mpi]'")
    with subprocess.Popen([*COMMAND, "train", "--nproc", "2", *SMALL, "--epochs", "1000",
                           "--threads", "1"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True,
                          stdin=subprocess.DEVNULL) as process:
        for line in process.stdout:
            if line.startswith("epoch 1:"):
                break
        ranks = rank_pids(process.pid)
        assert len(ranks) == 2
        process.kill()
        process.wait(timeout=60)
    for pid in ranks.values():  # each ends within the test's time: pidfds say when
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # ended already
        try:
            assert select.select([pidfd], [], [], 30)[0], f"rank pid {pid} still runs"
        finally:
            os.close(pidfd)

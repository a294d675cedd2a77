"""SIGTERM and SIGHUP end a run as Ctrl-C does: one line naming the last good
checkpoint, the status 128 + the signal's number, and no temporary left behind."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

import gpunet
from gpunet.cli.signals import Stopped, ending, stopping
from test_cli_errors import COMMAND, SMALL


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

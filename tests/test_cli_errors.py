"""Bad input and faults through the real console script: each ends in one line
naming the problem, the documented exit status, no traceback, and no file lost."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gpunet
from gpunet.checkpoint import load_checkpoint
from gpunet.cli import main
from gpunet.cli import train as train_command

COMMAND = [shutil.which("gpunet")] if shutil.which("gpunet") else [sys.executable, "-m", "gpunet"]
SMALL = ["--dataset", "fashion-mnist", "--train-subset", "512", "--test-subset", "256",
         "--batch-size", "64", "--backend", "numpy", "--quiet"]


def gpunet_cli(*args: str, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=cwd, stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def fails(done: subprocess.CompletedProcess, status: int, message: str) -> None:
    """``done`` exited ``status`` with ``message`` in its last line of standard error."""
    assert done.returncode == status, done.stdout + done.stderr
    assert message in done.stderr.strip().splitlines()[-1], done.stderr


@pytest.mark.parametrize("option, value, message", [
    ("--lr", "inf", "--lr: learning_rate must be in [0, inf), got inf"),
    ("--lr", "1e400", "--lr: learning_rate must be in [0, inf), got inf"),
    ("--lr", "nan", "--lr: learning_rate must be in [0, inf), got nan"),
    ("--lr", "-0.5", "--lr: learning_rate must be in [0, inf), got -0.5"),
    ("--momentum", "1", "--momentum: momentum must be in [0, 1.0), got 1.0"),
    ("--momentum", "2", "--momentum: momentum must be in [0, 1.0), got 2.0"),
    ("--momentum", "-0.1", "--momentum: momentum must be in [0, 1.0), got -0.1"),
    ("--momentum", "high", "--momentum: expected a number, got 'high'"),
])
def test_optimizer_values_are_checked_before_anything_loads(option, value, message):
    fails(gpunet_cli("train", option, value), 2, message)


@pytest.mark.parametrize("command", [["train"], ["xor"], ["fizzbuzz"], ["eval", "x.ckpt"]])
def test_a_bad_backend_variable_is_one_line(command):
    fails(gpunet_cli(*command, env={"GPUNET_BACKEND": "bogus"}), 2,
          "unknown $GPUNET_BACKEND 'bogus'; valid backends: numpy, cupy, auto")


def test_info_says_the_backend_variable_is_invalid():
    done = gpunet_cli("info", env={"GPUNET_BACKEND": "bogus"})
    assert done.returncode == 0
    assert "default backend: invalid: unknown $GPUNET_BACKEND 'bogus'" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "--save", "X", "--metrics", "X"], "--save and --metrics are the same file, X"),
    (["train", "--resume", "X", "--metrics", "X"], "--resume and --metrics are the same file, X"),
    (["train", "--save", "X", "--metrics", "./X"], "--save and --metrics are the same file"),
    (["train", "--data-dir", ".", "--metrics", "train-images-idx3-ubyte.gz"],
     "--metrics and a dataset file in --data-dir are the same file"),
    (["train", "--data-dir", ".", "--save", "t10k-labels-idx1-ubyte"],
     "--save and a dataset file in --data-dir are the same file"),
    (["show", "--metrics", "X", "--out", "X"], "--metrics and --out are the same file, X"),
    (["train", "--data-dir", ".", "--save", "fashion-mnist/train-labels-idx1-ubyte.gz"],
     "--save and a dataset file in --data-dir are the same file"),
])
def test_one_file_named_twice_is_refused_before_it_is_touched(tmp_path, args, message):
    (tmp_path / "fashion-mnist").mkdir()
    for name in ("X", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"precious " + name.encode())
    fails(gpunet_cli(*args, cwd=tmp_path), 2, message)
    for name in ("X", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"):
        assert (tmp_path / name).read_bytes() == b"precious " + name.encode()


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    fails(gpunet_cli("train", "--data-dir", str(tmp_path / "data")), 2,
          f"--data-dir: '{tmp_path / 'data'}' is a file, not a directory")


def test_a_given_data_dir_is_the_only_place_looked_in(fashion_dir, tmp_path):
    """Offline, with Debian's copy installed: the files missing from --data-dir are
    named, and no other copy is used."""
    done = gpunet_cli("train", *SMALL, "--data-dir", str(tmp_path), "--offline")
    fails(done, 1, f"missing from {tmp_path} and not downloaded (downloading is off)")
    assert "data:" not in done.stdout
    done = gpunet_cli("train", *SMALL, "--epochs", "0")
    assert done.returncode == 0 and f"data: {fashion_dir}" in done.stdout.splitlines()


def test_bench_out_that_is_a_file(tmp_path):
    (tmp_path / "results").write_text("kept")
    done = gpunet_cli("bench", "--quick", "--out", str(tmp_path / "results"))
    fails(done, 2, f"--out {tmp_path / 'results'} exists and is not a folder")
    assert done.stdout == "" and (tmp_path / "results").read_text() == "kept"


@pytest.mark.parametrize("option", ["--save", "--metrics"])
def test_a_file_that_cannot_be_written_names_path_and_reason(fashion_dir, option):
    """/proc takes no new files: the path and the system's reason, at the first write."""
    fails(gpunet_cli("train", *SMALL, "--epochs", "1", option, "/proc/gpunet-test"), 1,
          "gpunet: error: /proc/gpunet-test: No such file or directory")


@pytest.mark.parametrize("args, message", [
    (["train", "--save", "."], "--save: cannot write '.': it is a directory"),
    (["train", "--metrics", ""], "--metrics: cannot write '': no file name given"),
    (["show", "--out", "."], "--out: cannot write '.': it is a directory"),
])
def test_a_path_that_names_no_file_is_refused_at_once(args, message):
    fails(gpunet_cli(*args), 2, message)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_divergence_is_one_message_without_numpy_warnings(fashion_dir, tmp_path):
    done = gpunet_cli("train", *SMALL, "--epochs", "2", "--model", "wide", "--lr", "1e30")
    fails(done, 3, "the loss became non-finite in epoch 1")
    assert "RuntimeWarning" not in done.stderr
    with pytest.raises(SystemExit, match="3"):  # in process too: no warning reaches the user
        sys.exit(main(["train", *SMALL, "--epochs", "1", "--model", "wide", "--lr", "1e30"]))


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_a_failed_save_keeps_the_last_good_checkpoint(fashion_dir, tmp_path, monkeypatch, capsys,
                                                      error):
    """A full disk or a read-only filesystem at epoch 2: exit 1, the reason and the
    last good checkpoint (epoch 1's) named, that checkpoint whole."""
    real_save = train_command.save_checkpoint

    def save(path, *args, epoch, **kwargs):
        if epoch == 2:
            raise OSError(error, os.strerror(error), str(path))
        return real_save(path, *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(train_command, "save_checkpoint", save)
    ckpt = tmp_path / "run.ckpt"
    assert main(["train", *SMALL, "--epochs", "3", "--save", str(ckpt)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"gpunet: error: {ckpt}: {os.strerror(error)}; "
                   f"the last good checkpoint is {ckpt}")
    assert load_checkpoint(ckpt, gpunet.get_backend("numpy")).epoch == 1


def test_no_epochs_records_the_test_accuracy_it_prints(fashion_dir, tmp_path, capsys):
    import json
    metrics = tmp_path / "m.json"
    assert main(["train", *SMALL, "--epochs", "0", "--metrics", str(metrics)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    saved = json.loads(metrics.read_text())
    assert printed == f"test accuracy: {saved['test_accuracy']:.4f}" and saved["history"] == []


def test_resume_names_the_option_as_typed(fashion_dir, tmp_path, capsys):
    ckpt = tmp_path / "a.ckpt"
    assert main(["train", *SMALL, "--epochs", "1", "--save", str(ckpt)]) == 0
    assert main(["train", "--resume", str(ckpt), "--lr", "0.3", "--quiet"]) == 1
    assert "--lr 0.3 differs from the checkpoint's 0.5" in capsys.readouterr().err


def test_ctrl_c_while_the_command_imports_is_one_line():
    """An interrupt while NumPy loads (the first ~0.4 s of every command)."""
    code = ("import sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'numpy':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "from gpunet.cli import main\n"
            "sys.exit(main(['xor']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr, done.stdout) == (130, "gpunet: error: interrupted\n", "")


@pytest.mark.parametrize("inputs, classes", [(784, 7), (100, 10)])
@pytest.mark.parametrize("command", ["eval", "train --resume"])
def test_a_checkpoint_that_does_not_fit_the_data(fashion_dir, tmp_path, command, inputs, classes):
    """A checkpoint whose model takes other rows, or gives other classes, than the
    data's: one line, exit 1, the checkpoint left as it was."""
    from gpunet.checkpoint import save_checkpoint
    numpy = gpunet.get_backend("numpy")
    ckpt = tmp_path / "other.ckpt"
    save_checkpoint(ckpt, gpunet.Sequential([gpunet.Linear(inputs, classes, backend=numpy)]),
                    gpunet.Momentum(0.1, 0.9), epoch=1, seed=0,
                    config={"dataset": "fashion-mnist", "model": "logistic", "batch_size": 64})
    before = ckpt.read_bytes()
    done = gpunet_cli(*command.split(), str(ckpt), "--quiet", "--backend", "numpy", "--test-subset", "100",
                      *(["--epochs", "2"] if command != "eval" else []))
    fails(done, 1, f"{ckpt}: the model takes {inputs} inputs and gives {classes} outputs, but "
                   "fashion-mnist has 784 inputs and 10 classes")
    assert ckpt.read_bytes() == before

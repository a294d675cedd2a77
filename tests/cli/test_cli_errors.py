"""Bad input and faults through the real console script: each ends in one line
naming the problem, the documented exit status, no traceback, and no file lost.
Where the process itself is not the point and the command loads data, ``gpunet_main``
runs the same command in this process (one interpreter start less)."""
from __future__ import annotations

import errno
import functools
import os
import subprocess
import sys
import warnings

import pytest

import gpunet
from gpunet.checkpoint import load_checkpoint
from gpunet.cli import main
from gpunet.cli import train as train_command
from helpers.cli import SMALL, fails, gpunet_cli, gpunet_main

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
    (["show", "--metrics", "X.png", "--out", "X.png"],
     "--metrics and --out are the same file, X.png"),
    (["train", "--data-dir", ".", "--save", "fashion-mnist/train-labels-idx1-ubyte.gz"],
     "--save and a dataset file in --data-dir are the same file"),
])
def test_one_file_named_twice_is_refused_before_it_is_touched(tmp_path, args, message):
    (tmp_path / "fashion-mnist").mkdir()
    precious = ("X", "X.png", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte")
    for name in precious:
        (tmp_path / name).write_bytes(b"precious " + name.encode())
    fails(gpunet_cli(*args, cwd=tmp_path), 2, message)
    for name in precious:
        assert (tmp_path / name).read_bytes() == b"precious " + name.encode()


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    fails(gpunet_cli("train", "--data-dir", str(tmp_path / "data")), 2,
          f"--data-dir: '{tmp_path / 'data'}' is a file, not a directory")


def test_a_given_data_dir_is_the_only_place_looked_in(fashion_dir, tmp_path, capsys):
    """Offline, with Debian's copy installed: the files missing from --data-dir are
    named, and no other copy is used."""
    done = gpunet_main(capsys, "train", *SMALL, "--data-dir", str(tmp_path), "--offline")
    fails(done, 1, f"missing from {tmp_path} and not downloaded (downloading is off)")
    assert "data:" not in done.stdout
    done = gpunet_main(capsys, "train", *SMALL, "--epochs", "0")
    assert done.returncode == 0 and f"data: {fashion_dir}" in done.stdout.splitlines()


def test_bench_out_that_is_a_file(tmp_path):
    (tmp_path / "results").write_text("kept")
    done = gpunet_cli("bench", "--quick", "--out", str(tmp_path / "results"))
    fails(done, 2, f"--out {tmp_path / 'results'} exists and is not a folder")
    assert done.stdout == "" and (tmp_path / "results").read_text() == "kept"


@pytest.mark.parametrize("option", ["--save", "--metrics"])
def test_a_file_that_cannot_be_written_names_path_and_reason(fashion_dir, capsys, option):
    """/proc takes no new files: the path and the system's reason, at the first write."""
    fails(gpunet_main(capsys, "train", *SMALL, "--epochs", "1", option, "/proc/gpunet-test"), 1,
          "gpunet: error: /proc/gpunet-test: No such file or directory")


@pytest.mark.parametrize("args, message", [
    (["train", "--save", "."], "--save: cannot write '.': it is a directory"),
    (["train", "--metrics", ""], "--metrics: cannot write '': no file name given"),
    (["show", "--out", "."], "--out: cannot write '.': it is a directory"),
    (["show", "--out", "grid.gif"], "--out: cannot write a picture to 'grid.gif': the name must "
                                    "end in .png, .jpg, .jpeg, .svg, .pdf"),
])
def test_a_path_that_names_no_file_is_refused_at_once(args, message):
    fails(gpunet_cli(*args), 2, message)


MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def test_missing_mnist_names_the_files_the_place_and_the_dataset_that_is_here(fashion_dir,
                                                                              tmp_path):
    """Offline, with Debian's Fashion-MNIST installed: each command names the files it
    needs (eval only the test set's, show only the training set's), where it looked,
    and, for train and show, the command that uses the dataset that is here. No folder
    is left behind."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "GPUNET_DATA": ""}
    cache = tmp_path / "cache" / "gpunet" / "mnist"
    from gpunet.checkpoint import save_checkpoint
    ckpt = tmp_path / "mnist.ckpt"
    save_checkpoint(ckpt, gpunet.Sequential([gpunet.Linear(784, 10, backend="numpy")]),
                    gpunet.Momentum(0.1, 0.9), epoch=1, seed=0,
                    config={"dataset": "mnist", "mean_pixel": 33.3})
    grid = tmp_path / "grid.png"
    for args, files, rerun in [
            (["train"], MNIST_FILES, "; or run `gpunet train --dataset fashion-mnist`"),
            (["show", "--out", str(grid)], MNIST_FILES[:2],
             f"; or run `gpunet show --out {grid} --dataset fashion-mnist`"),
            (["eval", str(ckpt), "--backend", "numpy"], MNIST_FILES[2:], "")]:
        done = gpunet_cli(*args, "--offline", env=env)
        assert done.returncode == 1 and done.stderr == (
            f"gpunet: error: mnist not found: it needs {', '.join(files)} (or the same without "
            f".gz); looked in {cache} (no such directory); not downloaded (downloading is off); "
            f"put them in {cache}, pass --data-dir or set GPUNET_DATA{rerun}\n")
    assert sorted(os.listdir(tmp_path)) == ["mnist.ckpt"]


def test_missing_data_in_a_data_dir_offers_the_dataset_there(fashion_dir, tmp_path):
    (tmp_path / "fashion-mnist").symlink_to(fashion_dir)
    done = gpunet_cli("train", "--data-dir", str(tmp_path), "--offline")
    fails(done, 1, f"; or run `gpunet train --dataset fashion-mnist --data-dir {tmp_path}`")


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_divergence_is_one_message_without_numpy_warnings(fashion_dir, tmp_path):
    done = gpunet_cli("train", *SMALL, "--epochs", "2", "--model", "wide", "--lr", "1e30")
    fails(done, 3, "the loss became non-finite in epoch 1")
    assert "RuntimeWarning" not in done.stderr
    with pytest.raises(SystemExit, match="3"):  # in process too: no warning reaches the user
        sys.exit(main(["train", *SMALL, "--epochs", "1", "--model", "wide", "--lr", "1e30"]))


def runs_without_warnings(argv: list[str]) -> int:
    """``main(argv)``'s exit status, after checking that no RuntimeWarning left it."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        status = main(argv)
    assert [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)] == []
    return status


def diverging(run, monkeypatch, module, name):
    """Replace ``module.name``, an experiment, by its run at learning rate 1e30."""
    monkeypatch.setattr(module, name, functools.partial(run, learning_rate=1e30))


def test_no_command_lets_a_numerical_warning_through(fashion_dir, tmp_path, monkeypatch, capsys):
    """Every command path, diverging: xor and fizzbuzz at learning rate 1e30, eval of
    a checkpoint whose weights overflow (in a real process too), show of the curves
    of a run whose test loss overflowed."""
    from gpunet.checkpoint import save_checkpoint
    from gpunet.cli import experiments
    from gpunet.experiments import run_fizzbuzz, run_xor
    diverging(run_xor, monkeypatch, experiments.xor, "run_xor")
    diverging(run_fizzbuzz, monkeypatch, experiments.fizzbuzz, "run_fizzbuzz")
    assert runs_without_warnings(["xor", "--epochs", "20", "--quiet", "--backend", "numpy"]) == 0
    assert "final epoch loss: nan" in capsys.readouterr().out
    assert runs_without_warnings(["fizzbuzz", "--epochs", "2", "--batch-size", "64", "--quiet",
                                  "--backend", "numpy"]) == 0

    model = gpunet.mnist_model("wide", backend="numpy")
    for param in model.params():
        param[...] = 1e30
    ckpt = tmp_path / "huge.ckpt"
    save_checkpoint(ckpt, model, gpunet.Momentum(0.1, 0.9), epoch=1, seed=0,
                    config={"dataset": "fashion-mnist", "model": "wide"})
    args = ["eval", str(ckpt), "--test-subset", "100", "--backend", "numpy", "--quiet"]
    assert runs_without_warnings(args) == 0
    assert "(loss nan, 100 samples)" in capsys.readouterr().out
    done = gpunet_cli(*args)
    assert done.returncode == 0 and done.stderr == ""

    metrics = tmp_path / "m.json"
    metrics.write_text('{"history": [{"epoch": 1, "loss": 2.5, "test_loss": Infinity}, '
                       '{"epoch": 2, "loss": 1e31, "test_loss": NaN}]}')
    assert runs_without_warnings(["show", "--metrics", str(metrics),
                                  "--out", str(tmp_path / "c.png")]) == 0


def test_a_warning_raised_with_warnings_warn_is_kept_from_the_user(monkeypatch, capsys):
    """np.errstate covers NumPy's floating-point errors only; the mean of nothing warns
    through warnings.warn."""
    import numpy as np
    from gpunet.cli import experiments
    real_run = experiments.xor.run_xor

    def run(**kwargs):
        np.mean(np.zeros(0, np.float32))
        return real_run(**kwargs)

    monkeypatch.setattr(experiments.xor, "run_xor", run)
    assert runs_without_warnings(["xor", "--epochs", "1", "--quiet", "--backend", "numpy"]) == 0


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


def test_resume_names_the_option_as_typed(fashion_checkpoint, capsys):
    ckpt = fashion_checkpoint  # deep, trained at its default --lr 0.5
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
def test_a_checkpoint_that_does_not_fit_the_data(fashion_dir, tmp_path, capsys, command, inputs,
                                                 classes):
    """A checkpoint whose model takes other rows, or gives other classes, than the
    data's: one line, exit 1, the checkpoint left as it was."""
    from gpunet.checkpoint import save_checkpoint
    numpy = gpunet.get_backend("numpy")
    ckpt = tmp_path / "other.ckpt"
    save_checkpoint(ckpt, gpunet.Sequential([gpunet.Linear(inputs, classes, backend=numpy)]),
                    gpunet.Momentum(0.1, 0.9), epoch=1, seed=0,
                    config={"dataset": "fashion-mnist", "model": "logistic", "batch_size": 64})
    before = ckpt.read_bytes()
    done = gpunet_main(capsys, *command.split(), str(ckpt), "--quiet", "--backend", "numpy",
                       "--test-subset", "100", *(["--epochs", "2"] if command != "eval" else []))
    fails(done, 1, f"{ckpt}: the model takes {inputs} inputs and gives {classes} outputs, but "
                   "fashion-mnist has 784 inputs and 10 classes")
    assert ckpt.read_bytes() == before


@pytest.mark.parametrize("args, usage, error", [
    (["train", "--learning-rate", "0.1"], "gpunet train",
     "unrecognized arguments: --learning-rate 0.1 (did you mean --lr?)"),
    (["train", "--learning_rate=0.1", "--quite"], "gpunet train",
     "unrecognized arguments: --learning_rate=0.1 --quite (did you mean --lr or --quiet?)"),
    (["eval", "x.ckpt", "--Test-Subset", "9"], "gpunet eval",
     "unrecognized arguments: --Test-Subset 9 (did you mean --test-subset?)"),
    (["train", "--frobnicate"], "gpunet train", "unrecognized arguments: --frobnicate"),
    (["train", "--dataset", "fashion_mnist"], "gpunet train",
     "argument --dataset: invalid choice: 'fashion_mnist' (did you mean 'fashion-mnist'? "
     "choose from 'mnist', 'fashion-mnist')"),
    (["train", "--model", "Deep"], "gpunet train",
     "argument --model: invalid choice: 'Deep' (did you mean 'deep'? "
     "choose from 'logistic', 'deep', 'wide')"),
    (["train", "--model", "resnet"], "gpunet train",
     "argument --model: invalid choice: 'resnet' (choose from 'logistic', 'deep', 'wide')"),
    (["trian"], "gpunet", "argument COMMAND: invalid choice: 'trian' (did you mean 'train'? "
     "choose from 'xor', 'fizzbuzz', 'train', 'eval', 'show', 'bench', 'info')"),
])
def test_a_misspelt_option_or_choice_suggests_the_nearest(capsys, args, usage, error):
    """With the usage of the (sub)command it was given to, exit 2, one suggestion at most."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(f"usage: {usage} [-h]")
    assert lines[-1] == f"{usage}: error: {error}"


def test_a_file_that_is_not_json_is_not_a_metrics_file(tmp_path):
    text = tmp_path / "run.txt"
    text.write_text("epoch 1: loss 0.5\n")
    done = gpunet_cli("show", "--metrics", str(text), "--out", str(tmp_path / "c.png"))
    assert (done.returncode, done.stderr) == (
        1, f"gpunet: error: {text} is not a metrics file: not JSON "
           "(Expecting value at line 1 column 1)\n")

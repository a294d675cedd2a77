"""gpunet train / eval / show, end to end on real data, and their errors."""
import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet
from gpunet.checkpoint import load_checkpoint
from gpunet.cli import main
from gpunet.cli import train as train_command
from gpunet.cli.commands import build_parser
from gpunet.cli.options import count
from gpunet.data import DatasetError
from helpers.paths import README, ROOT



def run(*args):
    return main([*args, "--backend", "numpy", "--quiet"])


def test_train_fashion_mnist_one_epoch_at_batch_128(fashion_dir, tmp_path, capsys):
    ckpt, metrics = tmp_path / "run.ckpt", tmp_path / "run.json"
    assert run("train", "--dataset", "fashion-mnist", "--epochs", "1", "--batch-size", "128",
               "--save", str(ckpt), "--metrics", str(metrics)) == 0
    saved = json.loads(metrics.read_text())
    assert saved["test_accuracy"] >= 0.80, saved
    assert saved["dataset"] == "fashion-mnist" and len(saved["history"]) == 1
    assert set(saved["history"][0]) >= {"loss", "accuracy", "test_accuracy", "seconds",
                                        "samples_per_second"}
    assert run("eval", str(ckpt)) == 0
    assert f"test accuracy {saved['test_accuracy']:.4f}" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    assert main(["show", "--metrics", str(metrics), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def small(*extra):
    """``gpunet train`` on 3,000 Fashion-MNIST samples, tested on 500, at batch size 64;
    its one-epoch checkpoint is conftest's ``fashion_checkpoint``, trained once."""
    return ("train", "--dataset", "fashion-mnist", "--train-subset", "3000", "--test-subset",
            "500", "--batch-size", "64", *extra)


def test_resume_is_bitwise_identical(fashion_checkpoint, tmp_path):
    part = fashion_checkpoint  # small("--epochs", "1")'s
    assert run(*small("--epochs", "3", "--save", str(tmp_path / "full.ckpt"))) == 0
    assert run("train", "--resume", str(part), "--epochs", "3", "--save", str(part)) == 0
    numpy = gpunet.get_backend("numpy")
    full = load_checkpoint(tmp_path / "full.ckpt", numpy)
    resumed = load_checkpoint(part, numpy)
    assert resumed.epoch == full.epoch == 3
    for a, b in zip(full.model.params(), resumed.model.params()):
        np.testing.assert_array_equal(a, b)
    assert [h["test_accuracy"] for h in full.history] == [h["test_accuracy"] for h in resumed.history]


def test_resume_in_a_new_process_restores_the_seed(fashion_dir, tmp_path):
    """--seed 7 for one epoch, resumed to epoch 2 by a new process (where
    nothing has seeded gpunet yet): bitwise the parameters of an uninterrupted
    2-epoch --seed 7 run. The checkpoint's seed must key epoch 2's shuffle and
    dropout masks, not this process's last seed nor fresh entropy."""
    def tiny(*extra):
        return ("train", "--dataset", "fashion-mnist", "--train-subset", "1000", "--test-subset",
                "200", "--batch-size", "64", "--seed", "7", "--offline", *extra)

    assert run(*tiny("--epochs", "2", "--save", str(tmp_path / "full.ckpt"))) == 0
    assert run(*tiny("--epochs", "1", "--save", str(tmp_path / "part.ckpt"))) == 0
    gpunet.seed(0)
    source_root = str(Path(gpunet.__file__).resolve().parents[1])  # the gpunet under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [source_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "gpunet", "train", "--resume",
                           str(tmp_path / "part.ckpt"), "--epochs", "2", "--save",
                           str(tmp_path / "part.ckpt"), "--offline", "--backend", "numpy",
                           "--quiet"], capture_output=True, text=True, timeout=300,
                          cwd=source_root, env=env)  # (where mutmut finds its settings)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout and "after epoch 1" in done.stdout
    numpy = gpunet.get_backend("numpy")
    full = load_checkpoint(tmp_path / "full.ckpt", numpy)
    resumed = load_checkpoint(tmp_path / "part.ckpt", numpy)
    assert resumed.epoch == full.epoch == 2 and resumed.seed == full.seed == 7
    for a, b in zip(full.model.params(), resumed.model.params()):
        np.testing.assert_array_equal(a, b)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]


def test_resume_refuses_other_settings(fashion_checkpoint, capsys):
    """Every setting that differs, in one line, and what to do; not those that agree."""
    ckpt = fashion_checkpoint  # small("--epochs", "1")'s
    assert run("train", "--resume", str(ckpt), "--model", "wide") == 1
    assert capsys.readouterr().err == (
        f"gpunet: error: {ckpt}: --model wide differs from the checkpoint's deep: drop this "
        "option to resume as saved, or start a new run without --resume\n")
    assert run("train", "--resume", str(ckpt), "--model", "wide", "--lr", "0.5",
               "--batch-size", "128") == 1
    assert capsys.readouterr().err == (
        f"gpunet: error: {ckpt}: --model wide differs from the checkpoint's deep; --batch-size "
        "128 differs from the checkpoint's 64: drop these options to resume as saved, or start "
        "a new run without --resume\n")


def test_ctrl_c_keeps_the_last_complete_checkpoint(fashion_dir, tmp_path, monkeypatch, capsys):
    real_fit = train_command.fit

    def interrupted_fit(*args, on_epoch_end, **kwargs):
        def end(stats):
            on_epoch_end(stats)
            if stats.epoch == 2:
                raise KeyboardInterrupt
        return real_fit(*args, on_epoch_end=end, **kwargs)

    monkeypatch.setattr(train_command, "fit", interrupted_fit)
    ckpt = tmp_path / "a.ckpt"
    assert run(*small("--epochs", "5", "--save", str(ckpt))) == 130
    assert "interrupted" in capsys.readouterr().err
    assert load_checkpoint(ckpt, gpunet.get_backend("numpy")).epoch == 2


@pytest.mark.filterwarnings("ignore:.*encountered in matmul:RuntimeWarning")
def test_non_finite_loss_stops_with_its_own_exit_code(fashion_dir, tmp_path, capsys):
    assert run(*small("--epochs", "2", "--model", "wide", "--lr", "1e30", "--save", str(tmp_path / "a.ckpt"))) == 3
    err = capsys.readouterr().err
    assert "non-finite in epoch 1 at step" in err and "no checkpoint was written" in err
    assert not (tmp_path / "a.ckpt").exists()


def test_missing_data_offline_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GPUNET_DATA", raising=False)
    assert run("train", "--dataset", "mnist", "--offline") == 1
    err = capsys.readouterr().err
    assert "mnist not found" in err and "cache" in err and "Traceback" not in err


def test_count_options_accept_their_smallest_values():
    """--batch-size 1 (the notebook's own run), --epochs 0 and --seed 0."""
    assert count(1)("1") == 1 and count(0)("0") == 0 and count(0)("7") == 7
    for minimum, text in [(1, "0"), (0, "-1")]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"must be at least {minimum}, got"):
            count(minimum)(text)


def test_experiments_accept_batch_size_1_epochs_0_seed_0(capsys):
    for command, says in [("xor", "no epochs run"), ("fizzbuzz", "test accuracy (1..100):")]:
        assert run(command, "--batch-size", "1", "--epochs", "0", "--seed", "0") == 0
        assert says in capsys.readouterr().out


def test_train_accepts_batch_size_1_epochs_0_seed_0(fashion_dir, tmp_path):
    metrics = tmp_path / "m.json"
    assert run("train", "--dataset", "fashion-mnist", "--train-subset", "40", "--test-subset", "20",
               "--batch-size", "1", "--epochs", "1", "--seed", "0", "--offline",
               "--metrics", str(metrics)) == 0
    saved = json.loads(metrics.read_text())
    assert (saved["batch_size"], saved["epochs"], saved["seed"]) == (1, 1, 0)
    assert (saved["learning_rate"], saved["momentum"]) == (0.01, 0.99)  # the notebook's
    assert len(saved["history"]) == 1
    assert run("train", "--dataset", "fashion-mnist", "--train-subset", "40", "--test-subset", "20",
               "--epochs", "0", "--offline", "--metrics", str(metrics)) == 0
    saved = json.loads(metrics.read_text())
    assert saved["epochs"] == 0 and saved["history"] == []


def train_settings(monkeypatch, *args):
    """The settings ``gpunet train ARGS`` would train with (stopped before the data)."""
    seen = {}

    def stop(config, args, backend, comm):
        seen.update(config)
        raise DatasetError("stopped by the test before loading data")

    monkeypatch.setattr(train_command, "_data", stop)
    assert main(["train", *args, "--backend", "numpy", "--quiet"]) == 1
    return seen


def readme_match(pattern):
    found = re.search(pattern, " ".join(README.read_text().split()))
    assert found, f"README.md no longer says {pattern!r}"
    return found.groups()


def test_readme_defaults_are_the_commands_defaults(monkeypatch):
    """README's "Quick start: MNIST" is a contract: its defaults are what
    gpunet train uses; changing either alone fails here."""
    model, dataset, epochs, batch, lr, momentum = readme_match(
        r"`gpunet train` trains `--model (\w+)` \(.*?\) on `--dataset ([\w-]+)` for (\d+) epochs at "
        r"batch size (\d+) with momentum \(lr (\d+(?:\.\d+)?), (\d+(?:\.\d+)?)\)")
    defaults = train_settings(monkeypatch)
    assert defaults["model"] == model and defaults["dataset"] == dataset
    assert (defaults["epochs"], defaults["batch_size"]) == (int(epochs), int(batch))
    assert defaults["optimizer"] == "momentum"
    assert (defaults["learning_rate"], defaults["momentum"]) == (float(lr), float(momentum))
    assert readme_match(r"total epochs \(default (\d+)\), samples per step \(default (\d+)\)") \
        == (epochs, batch)
    (seed,) = readme_match(r"`--seed N` \| .*? \(default (\d+)\)")
    assert defaults["seed"] == int(seed)

    notebook = readme_match(r"At `--batch-size 1` the learning rate and momentum default to "
                            r"the notebook's (\d+(?:\.\d+)?) and (\d+(?:\.\d+)?)")
    for name in ["logistic", "deep", "wide"]:
        at_one = train_settings(monkeypatch, "--model", name, "--batch-size", "1")
        assert (at_one["learning_rate"], at_one["momentum"]) == tuple(map(float, notebook))

    rows = re.findall(r"^\| [^|]+ \| (\w+) \| (default|notebook) \| (\d+) \| (\d+) \| "
                      r"(\d+(?:\.\d+)?), (\d+(?:\.\d+)?) \|", README.read_text(), re.MULTILINE)
    assert {(row[0], row[1]) for row in rows} == {(m, s) for m in ("logistic", "deep")
                                                  for s in ("default", "notebook")}
    for name, setting, batch, epochs, lr, momentum in rows:
        if setting == "default":
            settings = train_settings(monkeypatch, "--model", name)
            assert (settings["batch_size"], settings["epochs"]) == (int(batch), int(epochs))
        else:
            assert (batch, epochs) == ("1", "1")
            settings = train_settings(monkeypatch, "--model", name, "--batch-size", "1")
        assert (settings["learning_rate"], settings["momentum"]) == (float(lr), float(momentum))


def test_docs_cli_names_every_option_of_train():
    """docs/cli.md's table is the full list README points to: an option added
    to ``gpunet train`` and left out of it fails here."""
    commands = next(action for action in build_parser()._actions
                    if isinstance(action, argparse._SubParsersAction))
    options = {option for action in commands.choices["train"]._actions
               for option in action.option_strings if option.startswith("--")} - {"--help"}
    table = (ROOT / "docs" / "cli.md").read_text().split("## Data and checkpoints")[0]
    named = set(re.findall(r"`(--[a-z-]+)[ `]", table))
    assert options and options <= named, f"docs/cli.md leaves out {sorted(options - named)}"


@pytest.mark.parametrize("args, message", [
    (["train", "--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["train", "--epochs", "-1"], "--epochs: must be at least 0, got -1"),
    (["train", "--dataset", "cifar"], "--dataset: invalid choice: 'cifar'"),
    (["train", "--backend", "tpu"], "--backend: invalid choice: 'tpu'"),
    (["train", "--model", "resnet"], "--model: invalid choice: 'resnet'"),
    (["train", "--data-dir", "/no/such/dir"], "--data-dir: directory '/no/such/dir' does not exist"),
    (["train", "--save", "/no/such/dir/x.ckpt"], "directory '/no/such/dir' does not exist"),
    (["train", "--lr", "fast"], "--lr: expected a number, got 'fast'"),
    (["eval"], "the following arguments are required: CKPT"),
    (["show"], "the following arguments are required: --out"),
])
def test_bad_options_give_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_eval_refuses_a_non_checkpoint(tmp_path, capsys):
    (tmp_path / "x.ckpt").write_bytes(b"\x80\x04junk")
    assert run("eval", str(tmp_path / "x.ckpt")) == 1
    assert "pickle" in capsys.readouterr().err


@pytest.mark.parametrize("name, signature", [("g.png", b"\x89PNG"), ("g.jpg", b"\xff\xd8\xff")])
def test_show_draws_sample_images_from_the_training_set_alone(fashion_dir, tmp_path, name,
                                                              signature):
    pytest.importorskip("matplotlib")
    train_only = only(tmp_path, fashion_dir, "train")
    assert main(["show", "--dataset", "fashion-mnist", "--data-dir", str(train_only), "--offline",
                 "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / name).read_bytes().startswith(signature)


def test_show_reports_a_bad_metrics_file(tmp_path, capsys):
    (tmp_path / "m.json").write_text("{not json")
    assert main(["show", "--metrics", str(tmp_path / "m.json"), "--out", str(tmp_path / "c.png")]) == 1
    assert "m.json" in capsys.readouterr().err


def test_resume_without_save_warns_that_nothing_will_be_written(fashion_checkpoint, capsys):
    ckpt = fashion_checkpoint  # one epoch on 3,000 Fashion-MNIST samples, tested on 500
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert run("train", "--resume", str(ckpt), "--epochs", "2") == 0
    out, err = capsys.readouterr()
    assert err == (f"gpunet: warning: --resume without --save: the epochs trained now will not "
                   f"be saved (add --save {ckpt} to keep them)\n")
    assert "epoch 2:" in out and ckpt.read_bytes() == before
    assert run("train", "--resume", str(ckpt), "--epochs", "2", "--save", str(ckpt)) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("epochs", ["1", "0"])
def test_resume_with_nothing_to_train_says_so(fashion_checkpoint, capsys, epochs):
    """--epochs at or below the checkpoint's epoch: its test accuracy, exit 0, nothing trained."""
    ckpt = fashion_checkpoint
    before = ckpt.read_bytes()
    accuracy = load_checkpoint(ckpt, gpunet.get_backend("numpy")).history[-1]["test_accuracy"]
    capsys.readouterr()
    assert run("train", "--resume", str(ckpt), "--epochs", epochs) == 0
    out, err = capsys.readouterr()
    assert f"nothing to train: {ckpt} is at epoch 1; pass --epochs above 1 to train on" in out
    assert out.endswith(f"test accuracy: {accuracy:.4f}\n")
    assert "training" not in out and err == "" and ckpt.read_bytes() == before


def test_the_checkpoint_keeps_the_mean_training_pixel(fashion_dir, fashion_checkpoint):
    from gpunet.data import load_raw
    config = load_checkpoint(fashion_checkpoint, gpunet.get_backend("numpy")).config
    images = load_raw("fashion-mnist", fashion_dir, splits=("train",)).train_images[:3000]
    assert config["mean_pixel"] == float(images.mean(dtype=np.float64))


def only(tmp_path, fashion_dir, split):
    """A folder that holds (links to) the two files of Fashion-MNIST's ``split`` only."""
    folder = tmp_path / split
    folder.mkdir()
    prefix = "train" if split == "train" else "t10k"
    for kind in ("images-idx3", "labels-idx1"):
        name = f"{prefix}-{kind}-ubyte.gz"
        (folder / name).symlink_to(fashion_dir / name)
    return folder


def evaluated(capsys, *args):
    capsys.readouterr()
    assert run("eval", *args) == 0
    return capsys.readouterr().out.splitlines()[-1]


def test_eval_reads_only_the_test_set(fashion_dir, fashion_checkpoint, tmp_path, capsys):
    """With the mean training pixel from the checkpoint: the test accuracy training printed."""
    ckpt = fashion_checkpoint
    accuracy = load_checkpoint(ckpt, gpunet.get_backend("numpy")).history[-1]["test_accuracy"]
    said = evaluated(capsys, str(ckpt), "--test-subset", "500", "--offline", "--data-dir",
                     str(only(tmp_path, fashion_dir, "test")))
    assert f"test accuracy {accuracy:.4f} (loss" in said


def test_eval_of_a_checkpoint_without_the_mean_reads_the_training_images(
        fashion_dir, fashion_checkpoint, tmp_path, capsys):
    """Written by an older gpunet: the mean comes from the first train_subset training
    images, as it did in training, so the accuracy is the same."""
    from helpers.checkpoints import rewrite_metadata
    ckpt = fashion_checkpoint
    everything = evaluated(capsys, str(ckpt))
    config = load_checkpoint(ckpt, gpunet.get_backend("numpy")).config
    del config["mean_pixel"]
    rewrite_metadata(ckpt, config=json.dumps(config))
    assert evaluated(capsys, str(ckpt)) == everything
    test_only = only(tmp_path, fashion_dir, "test")
    assert run("eval", str(ckpt), "--data-dir", str(test_only), "--offline") == 1
    assert ("fashion-mnist: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz missing from "
            f"{test_only} and not downloaded (downloading is off)") in capsys.readouterr().err

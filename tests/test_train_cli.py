"""gpunet train / eval / show, end to end on real data, and their errors."""
import json

import numpy as np
import pytest

import gpunet
from gpunet.checkpoint import load_checkpoint
from gpunet.cli import main
from gpunet.cli import train as train_command


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
    return ("train", "--dataset", "fashion-mnist", "--train-subset", "3000", "--test-subset",
            "500", "--batch-size", "64", *extra)


def test_resume_is_bitwise_identical(fashion_dir, tmp_path):
    assert run(*small("--epochs", "3", "--save", str(tmp_path / "full.ckpt"))) == 0
    assert run(*small("--epochs", "1", "--save", str(tmp_path / "part.ckpt"))) == 0
    assert run("train", "--resume", str(tmp_path / "part.ckpt"), "--epochs", "3",
               "--save", str(tmp_path / "part.ckpt")) == 0
    numpy = gpunet.get_backend("numpy")
    full = load_checkpoint(tmp_path / "full.ckpt", numpy)
    resumed = load_checkpoint(tmp_path / "part.ckpt", numpy)
    assert resumed.epoch == full.epoch == 3
    for a, b in zip(full.model.params(), resumed.model.params()):
        np.testing.assert_array_equal(a, b)
    assert [h["test_accuracy"] for h in full.history] == [h["test_accuracy"] for h in resumed.history]


def test_resume_refuses_other_settings(fashion_dir, tmp_path, capsys):
    assert run(*small("--epochs", "1", "--save", str(tmp_path / "a.ckpt"))) == 0
    assert run("train", "--resume", str(tmp_path / "a.ckpt"), "--model", "wide") == 1
    assert "--model wide differs from the checkpoint's deep" in capsys.readouterr().err


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


def test_show_draws_sample_images(fashion_dir, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["show", "--dataset", "fashion-mnist", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_show_reports_a_bad_metrics_file(tmp_path, capsys):
    (tmp_path / "m.json").write_text("{not json")
    assert main(["show", "--metrics", str(tmp_path / "m.json"), "--out", str(tmp_path / "c.png")]) == 1
    assert "m.json" in capsys.readouterr().err

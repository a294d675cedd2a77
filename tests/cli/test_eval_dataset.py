"""gpunet eval: the test set is the checkpoint's dataset, or --dataset; a checkpoint that
records none needs --dataset, and evaluating on another dataset than its own warns."""
from __future__ import annotations

import pytest

import gpunet
from gpunet.checkpoint import save_checkpoint
from gpunet.cli import main


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    """A logistic model saved from Python with the ``dataset=`` given; nothing in the cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GPUNET_DATA", raising=False)

    def saved(**recorded):
        model = gpunet.Sequential([gpunet.Linear(784, 10, backend="numpy")])
        return save_checkpoint(tmp_path / "run.ckpt", model, gpunet.Momentum(0.1, 0.9), epoch=1,
                               seed=0, mean_pixel=72.9, **recorded)
    return saved


def evaluate(path, capsys, *options):
    capsys.readouterr()
    status = main(["eval", str(path), "--backend", "numpy", "--quiet", "--offline",
                   "--test-subset", "100", *options])
    return (status, *capsys.readouterr())


def test_a_checkpoint_that_records_no_dataset_needs_dataset(checkpoint, capsys):
    path = checkpoint()
    status, _, err = evaluate(path, capsys)
    assert (status, err) == (1, f"gpunet: error: {path}: the checkpoint records no dataset; "
                                "name the test set with --dataset mnist|fashion-mnist\n")


def test_its_own_dataset_by_default_and_as_asked_without_a_warning(checkpoint, fashion_dir,
                                                                   capsys):
    path = checkpoint(dataset="fashion-mnist")
    for asked in ([], ["--dataset", "fashion-mnist"]):
        status, out, err = evaluate(path, capsys, "--data-dir", str(fashion_dir), *asked)
        assert (status, err) == (0, "")
        assert "fashion-mnist test accuracy" in out


def test_another_dataset_than_the_checkpoints_warns_then_evaluates(checkpoint, fashion_dir,
                                                                   capsys):
    path = checkpoint(dataset="mnist")
    status, out, err = evaluate(path, capsys, "--dataset", "fashion-mnist",
                                "--data-dir", str(fashion_dir))
    assert (status, err) == (0, f"gpunet: warning: {path} was trained on mnist, evaluating it "
                                "on fashion-mnist as --dataset asks\n")
    assert "fashion-mnist test accuracy" in out

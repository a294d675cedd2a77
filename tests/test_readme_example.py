"""README's Python example runs as written, offline, on Fashion-MNIST (a subset of it),
learns, and its checkpoint loads back and evaluates as ``gpunet eval`` reads it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import gpunet
from gpunet.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def example() -> str:
    section = README.read_text().split("## Example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_learns_and_round_trips_its_checkpoint(fashion_dir, tmp_path,
                                                                      monkeypatch, capsys):
    real = gpunet.load_mnist

    def subset(name, *args, **kwargs):  # the dataset as written, read from fashion_dir, smaller
        assert name == "fashion-mnist", "README's example runs offline on Debian's Fashion-MNIST"
        return real(name, fashion_dir, train_subset=6000, test_subset=1000, download=False,
                    progress=False)

    monkeypatch.setattr(gpunet, "load_mnist", subset)
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(example(), "README example", "exec"), names)
    history, data = names["history"], names["data"]
    assert history[-1].test_accuracy > 0.75
    assert names["epoch_loss"].shape == ()

    checkpoint = names["checkpoint"]
    assert checkpoint.config == {"dataset": "fashion-mnist", "mean_pixel": data.mean_pixel}
    assert checkpoint.epoch == len(history)
    assert gpunet.backend_of(checkpoint.model.params()[0]) is gpunet.get_backend()
    accuracy = f"test accuracy {history[-1].test_accuracy:.4f}"
    assert capsys.readouterr().out.splitlines()[-2:] == [accuracy, f"reloaded: {accuracy}"]

    assert main(["eval", "fashion.ckpt", "--backend", "numpy", "--quiet", "--offline",
                 "--data-dir", str(fashion_dir), "--test-subset", "1000"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and f"fashion-mnist {accuracy}" in out.splitlines()[-1]

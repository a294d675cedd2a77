"""README's Python example runs as written (on a Fashion-MNIST subset) and learns."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import gpunet

README = Path(__file__).resolve().parents[1] / "README.md"


def example() -> str:
    section = README.read_text().split("## Example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_and_learns(fashion_dir, monkeypatch):
    real = gpunet.load_mnist

    def subset(name, *args, **kwargs):
        assert name == "mnist"
        return real("fashion-mnist", fashion_dir, train_subset=6000, test_subset=1000,
                    progress=False)

    monkeypatch.setattr(gpunet, "load_mnist", subset)
    names: dict = {}
    exec(compile(example(), "README example", "exec"), names)
    assert names["history"][-1].test_accuracy > 0.75
    assert names["epoch_loss"].shape == ()

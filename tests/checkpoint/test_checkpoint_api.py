"""save_checkpoint and load_checkpoint from Python: the backend by name or default,
the dataset and mean pixel recorded."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import gpunet
from gpunet.backend import backend_of
from gpunet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gpunet.data import DatasetError


@pytest.fixture
def saved(numpy_backend, tmp_path):
    """A checkpoint of a small model trained one step, and the model."""
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(4, 3, backend=numpy_backend)])
    optimizer = gpunet.Momentum(0.1, 0.9)
    model.backward(model.forward(np.ones((2, 4))))
    optimizer.step(model)  # a momentum state to load too
    return save_checkpoint(tmp_path / "a.ckpt", model, optimizer, epoch=1, seed=0), model


def loaded_on(path, *backend):
    return backend_of(load_checkpoint(path, *backend).model.params()[0])


def test_load_checkpoint_takes_a_backend_name(saved):
    path, _ = saved
    assert loaded_on(path, "numpy") is gpunet.get_backend("numpy")
    assert loaded_on(path, " NumPy ") is gpunet.get_backend("numpy")
    assert loaded_on(path, "auto") is gpunet.get_backend("auto")


def test_load_checkpoint_defaults_to_the_default_backend(saved, monkeypatch):
    path, model = saved
    monkeypatch.setenv("GPUNET_BACKEND", "numpy")
    checkpoint = gpunet.load_checkpoint(path)
    assert backend_of(checkpoint.model.params()[0]) is gpunet.get_backend()
    np.testing.assert_array_equal(checkpoint.model.params()[0], model.params()[0])


def test_an_unknown_backend_name_is_one_line(saved):
    with pytest.raises(ValueError, match="^unknown backend 'tpu'; valid backends: "):
        load_checkpoint(saved[0], "tpu")


def test_the_dataset_and_mean_pixel_are_recorded(saved, tmp_path):
    _, model = saved
    path = save_checkpoint(tmp_path / "d.ckpt", model, gpunet.GradientDescent(0.1), epoch=2,
                           seed=0, dataset="fashion-mnist", mean_pixel=np.float32(72.5),
                           config={"batch_size": 8})
    config = load_checkpoint(path, "numpy").config
    assert config == {"batch_size": 8, "dataset": "fashion-mnist", "mean_pixel": 72.5}
    assert type(config["mean_pixel"]) is float


def test_a_config_that_agrees_is_fine_one_that_contradicts_is_refused(saved, tmp_path):
    _, model = saved
    save = lambda **kw: save_checkpoint(tmp_path / "c.ckpt", model,  # noqa: E731
                                        gpunet.GradientDescent(0.1), epoch=1, seed=0, **kw)
    save(dataset="mnist", config={"dataset": "mnist"})
    with pytest.raises(ValueError, match="^dataset 'mnist' contradicts the config's "
                                         "'fashion-mnist'$"):
        save(dataset="mnist", config={"dataset": "fashion-mnist"})
    with pytest.raises(ValueError, match="^mean_pixel 33.0 contradicts the config's 30$"):
        save(mean_pixel=33, config={"mean_pixel": 30})


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dataset": "kmnist"}, DatasetError,
     "unknown dataset 'kmnist'; known datasets: mnist, fashion-mnist"),
    ({"mean_pixel": 300}, CheckpointError,
     "invalid checkpoint metadata: config.mean_pixel must be a number in [0, 255], got 300.0"),
    ({"mean_pixel": True}, CheckpointError,
     "invalid checkpoint metadata: config.mean_pixel must be a number in [0, 255], got True")])
def test_a_bad_dataset_or_mean_pixel_is_refused_and_nothing_written(saved, tmp_path, kwargs,
                                                                    error, message):
    _, model = saved
    with pytest.raises(error) as info:
        save_checkpoint(tmp_path / "b.ckpt", model, gpunet.GradientDescent(0.1), epoch=1, seed=0,
                        **kwargs)
    assert str(info.value).endswith(message)
    assert not (tmp_path / "b.ckpt").exists()



def test_the_checkpoint_imports_no_command_and_no_model_preset():
    """gpunet.checkpoint knows arrays and metadata: gpunet train's settings are the CLI's."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, gpunet.checkpoint; print(*sorted(sys.modules))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert [name for name in loaded if name.startswith(("gpunet.cli", "gpunet.models"))] == []

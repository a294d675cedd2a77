"""The run settings gpunet train keeps in a checkpoint's config: train --resume and eval
refuse a bad one (a file edited by hand), naming it, before reading any data; the
checkpoint itself keeps any config, which from Python is the caller's."""
import json

import pytest

import gpunet
from gpunet.checkpoint import load_checkpoint
from gpunet.cli import main
from gpunet.cli.run_settings import load_run
from gpunet.models import mnist_model
from helpers.checkpoints import rewrite_metadata, save

COMMANDS = {"eval": ["eval", "{path}"], "train --resume": ["train", "--resume", "{path}"]}


@pytest.fixture
def path(numpy_backend, tmp_path):
    gpunet.seed(0)
    return save(tmp_path / "a.ckpt", mnist_model("deep", backend=numpy_backend),
                gpunet.Momentum(0.1, 0.9))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("config, message", [
    ({"train_subset": "100"}, "config.train_subset must be null or an integer of at least 1, "
                              "got '100'"),
    ({"test_subset": 0}, "config.test_subset must be null or an integer of at least 1, got 0"),
    ({"train_subset": 0}, "config.train_subset must be null or an integer of at least 1, got 0"),
    ({"train_subset": -5}, "config.train_subset must be null or an integer of at least 1, "
                           "got -5"),
    ({"model": "resnet"}, "config.model must be one of logistic, deep, wide, got 'resnet'"),
    ({"model": ["deep"]}, "config.model must be one of logistic, deep, wide, got ['deep']"),
    ({"batch_size": -3}, "config.batch_size must be an integer of at least 1, got -3"),
    ({"batch_size": "32"}, "config.batch_size must be an integer of at least 1, got '32'"),
    ({"batch_size": True}, "config.batch_size must be an integer of at least 1, got True"),
    ({"epochs": 2.0}, "config.epochs must be an integer of at least 0, got 2.0"),
    ({"seed": -1}, "config.seed must be an integer of at least 0, got -1"),
    ({"dataset": 7}, "config.dataset must be a dataset name, got 7"),
    ({"optimizer": "adam"}, "config.optimizer must be momentum or sgd, got 'adam'"),
    ({"learning_rate": float("nan")}, "config.learning_rate must be a number in [0, inf), got nan"),
    ({"momentum": 1}, "config.momentum must be a number in [0, 1), got 1"),
    ({"mean_pixel": -0.5}, "config.mean_pixel must be a number in [0, 255], got -0.5"),
    ({"mean_pixel": 255.01}, "config.mean_pixel must be a number in [0, 255], got 255.01"),
    ({"mean_pixel": float("nan")}, "config.mean_pixel must be a number in [0, 255], got nan"),
    ({"mean_pixel": float("inf")}, "config.mean_pixel must be a number in [0, 255], got inf"),
    ({"mean_pixel": "72.9"}, "config.mean_pixel must be a number in [0, 255], got '72.9'"),
    ({"mean_pixel": True}, "config.mean_pixel must be a number in [0, 255], got True"),
])
def test_a_bad_setting_is_refused_naming_it(numpy_backend, path, capsys, command, config,
                                            message):
    rewrite_metadata(path, config=json.dumps(config))
    loaded = load_checkpoint(path, numpy_backend).config  # the format's: any object
    assert json.dumps(loaded) == json.dumps(config)  # NaN as NaN
    capsys.readouterr()
    argv = [arg.format(path=path) for arg in COMMANDS[command]]
    assert main([*argv, "--backend", "numpy", "--quiet", "--offline"]) == 1
    assert capsys.readouterr().err == (f"gpunet: error: {path}: invalid checkpoint metadata: "
                                       f"{message}\n")


@pytest.mark.parametrize("mean", [0, 255, 72.94035223214286])
def test_a_mean_pixel_in_range_is_kept(numpy_backend, path, mean):
    rewrite_metadata(path, config=json.dumps({"mean_pixel": mean}))
    assert load_run(path, numpy_backend).config == {"mean_pixel": mean}


def test_settings_it_does_not_read_pass(numpy_backend, path):
    config = {"note": ["anything", {"else": None}], "train_subset": None, "model": "wide"}
    rewrite_metadata(path, config=json.dumps(config))
    assert load_run(path, numpy_backend).config == config

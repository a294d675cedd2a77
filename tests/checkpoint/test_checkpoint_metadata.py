"""Checkpoint metadata edited by hand: every bad field is refused, naming it, before
anything is built; nothing crashes and nothing is allocated for what the file lacks."""
import json
import reprlib
import tracemalloc

import numpy as np
import pytest
import safetensors.numpy

import gpunet
from gpunet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, widths
from gpunet.layers import Linear, Sequential, Tanh
from gpunet.layers.spec import KEYS
from gpunet.models import mnist_model
from helpers.checkpoints import rewrite_metadata, save

CLI_CONFIG = {"dataset": "mnist", "model": "deep", "epochs": 5, "batch_size": 128, "seed": 0,
              "optimizer": "momentum", "train_subset": None, "test_subset": 1000,
              "learning_rate": 0.5, "momentum": 0.9, "mean_pixel": 33.3184589}


@pytest.fixture
def path(numpy_backend, tmp_path):
    gpunet.seed(0)
    return save(tmp_path / "a.ckpt", mnist_model("deep", backend=numpy_backend),
                gpunet.Momentum(0.1, 0.9))


def refused(path, backend, message):
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path, backend)
    assert str(error.value) == f"{path}: invalid checkpoint metadata: {message}"


def momentum(learning_rate, rate):
    return f'{{"type": "Momentum", "learning_rate": {learning_rate}, "momentum": {rate}}}'


@pytest.mark.parametrize("field, value, message", [
    ("config", "[1, 2]", "config must be a JSON object, got [1, 2]"),
    ("config", "{not json", "config is not JSON (Expecting property name enclosed in double "
                            "quotes: line 1 column 2 (char 1))"),
    ("optimizer", '"sgd"', "optimizer must be a JSON object whose type is Momentum or "
                           "GradientDescent, got 'sgd'"),
    ("optimizer", '{"type": ["Momentum"]}', "optimizer must be a JSON object whose type is "
     "Momentum or GradientDescent, got {'type': ['Momentum']}"),
    ("optimizer", '{"type": "Adam", "learning_rate": 0.1}', "optimizer must be a JSON object whose "
     "type is Momentum or GradientDescent, got {'learning_rate': 0.1, 'type': 'Adam'}"),
    ("optimizer", '{"type": "Momentum", "learning_rate": 0.1}', "optimizer: a Momentum has the "
     "keys ['learning_rate', 'momentum', 'type'], got ['learning_rate', 'type']"),
    ("optimizer", momentum("NaN", 0.9), "optimizer.learning_rate must be a number in [0, inf), "
                                        "got nan"),
    ("optimizer", momentum("Infinity", 0.9), "optimizer.learning_rate must be a number in "
                                             "[0, inf), got inf"),
    ("optimizer", momentum("1e999", 0.9), "optimizer.learning_rate must be a number in [0, inf), "
                                          "got inf"),
    pytest.param("optimizer", momentum(10 ** 400, 0.9), "optimizer.learning_rate must be a "
                 f"number in [0, inf), got {reprlib.repr(10 ** 400)}", id="beyond-any-float"),
    ("optimizer", momentum(-0.1, 0.9), "optimizer.learning_rate must be a number in [0, inf), "
                                       "got -0.1"),
    ("optimizer", momentum('"0.1"', 0.9), "optimizer.learning_rate must be a number in [0, inf), "
                                          "got '0.1'"),
    ("optimizer", momentum(0.1, 1.0), "optimizer.momentum must be a number in [0, 1), got 1.0"),
    ("optimizer", momentum(0.1, -0.5), "optimizer.momentum must be a number in [0, 1), got -0.5"),
    ("optimizer", momentum(0.1, "NaN"), "optimizer.momentum must be a number in [0, 1), got nan"),
    ("optimizer", momentum(0.1, "false"), "optimizer.momentum must be a number in [0, 1), "
                                          "got False"),
    ("history", '{"epoch": 1}', "history must be a JSON list of objects, got {'epoch': 1}"),
    ("history", "[1, 2]", "history must be a JSON list of objects, got [1, 2]"),
    ("history", '[[{"epoch": 1}]]', "history must be a JSON list of objects, "
                                    "got [[{'epoch': 1}]]"),
    ("history", '[{"epoch": 1}, []]', "history must be a JSON list of objects, "
                                      "got [{'epoch': 1}, []]"),
    ("optimizer", '{"type": "Momentum", "learning_rate": 0.1, "momentum": 0.9, "nesterov": true}',
     "optimizer: a Momentum has the keys ['learning_rate', 'momentum', 'type'], "
     "got ['learning_rate', 'momentum', 'nesterov', 'type']"),
    ("optimizer", '{"type": "GradientDescent", "learning_rate": 0.1, "momentum": 0.9}',
     "optimizer: a GradientDescent has the keys ['learning_rate', 'type'], "
     "got ['learning_rate', 'momentum', 'type']"),
    ("epoch", "-1", "epoch must be a non-negative integer, got '-1'"),
    ("epoch", "1.5", "epoch must be a non-negative integer, got '1.5'"),
    ("epoch", "", "epoch must be a non-negative integer, got ''"),
    ("seed", " 7", "seed must be a non-negative integer, got ' 7'"),
    pytest.param("seed", "1" * 4301, "seed must be a non-negative integer, got "
                 f"{reprlib.repr('1' * 4301)}", id="more-digits-than-int-reads"),
    ("seed", 7, "seed must be a string, got 7"),
])
def test_a_bad_field_is_refused_naming_it(numpy_backend, path, field, value, message):
    rewrite_metadata(path, **{field: value})
    refused(path, numpy_backend, message)


def test_the_config_is_the_callers_any_json_object(numpy_backend, tmp_path):
    """The checkpoint does not know gpunet train's settings (``test_cli_run_settings``
    checks them): a config that the command would refuse is saved and loaded from Python."""
    config = {"model": "resnet", "train_subset": 0, "mean_pixel": -1, "dataset": 7}
    save_checkpoint(tmp_path / "a.ckpt", Sequential([Linear(784, 10, backend=numpy_backend)]),
                    gpunet.GradientDescent(0.1), epoch=1, seed=0, config=config)
    assert load_checkpoint(tmp_path / "a.ckpt", numpy_backend).config == config


def test_a_missing_field_is_named(numpy_backend, path):
    data = path.read_bytes()
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_size])
    del header["__metadata__"]["epoch"]
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + header_size:])
    refused(path, numpy_backend, "epoch is missing")


def deep_architecture(first_linear):
    return {"layer": "Sequential", "layers": [
        first_linear, {"layer": "Dropout", "p": 0.1, "inverted": False}, {"layer": "Tanh"},
        {"layer": "Linear", "input_dim": 30, "output_dim": 10, "init": "xavier"},
        {"layer": "Dropout", "p": 0.1, "inverted": False}, {"layer": "Tanh"},
        {"layer": "Linear", "input_dim": 10, "output_dim": 10, "init": "xavier"}]}


def linear(input_dim=784, output_dim=30, init="xavier", **extra):
    return {"layer": "Linear", "input_dim": input_dim, "output_dim": output_dim, "init": init,
            **extra}


@pytest.mark.parametrize("first, message", [
    (linear("784"), "layers[0].input_dim must be a positive integer, got '784'"),
    (linear(784, 0), "layers[0].output_dim must be a positive integer, got 0"),
    (linear(784, 30.0), "layers[0].output_dim must be a positive integer, got 30.0"),
    (linear(True), "layers[0].input_dim must be a positive integer, got True"),
    (linear(init="he"), "layers[0].init must be one of xavier, glorot, normal, uniform, got 'he'"),
    (linear(bias=False), "layers[0]: a Linear description has the keys ['init', 'input_dim', "
                         "'output_dim'], got ['bias', 'init', 'input_dim', 'output_dim']"),
    ({"layer": "Dropout", "p": 1.5, "inverted": False},
     "layers[0].p must be a number in [0, 1), got 1.5"),
    ({"layer": "Dropout", "p": "0.1", "inverted": False},
     "layers[0].p must be a number in [0, 1), got '0.1'"),
    ({"layer": "Dropout", "p": 0.1, "inverted": "yes"},
     "layers[0].inverted must be true or false, got 'yes'"),
    ({"layer": "Tanh", "alpha": 1}, "layers[0]: a Tanh description has the keys [], got ['alpha']"),
    ({"layer": "os.system"}, "layers[0]: a layer description must be a dict whose 'layer' is one "
     f"of {', '.join(KEYS)}, got {{'layer': 'os.system'}}"),
    ({"layer": "Sequential", "layers": {"0": linear()}},
     "layers[0].layers must be a list, got {'0': {'init': 'xavier', 'input_dim': 784, "
     "'layer': 'Linear', 'output_dim': 30}}"),
])
def test_a_bad_layer_is_refused_naming_where(numpy_backend, path, first, message):
    rewrite_metadata(path, architecture=json.dumps(deep_architecture(first)))
    refused(path, numpy_backend, f"architecture: {message}")


def nested(depth):
    return '{"layer": "Sequential", "layers": [' * depth + '{"layer": "Tanh"}' + "]}" * depth


@pytest.mark.parametrize("architecture, message", [
    ("[" * 5000 + "]" * 5000, "architecture is nested too deeply"),
    (nested(5000), "architecture is nested too deeply"),
    (nested(33), "architecture: Sequentials nested more than 32 deep"),
], ids=["json-5000", "sequential-5000", "sequential-33"])
def test_deep_nesting_is_refused(numpy_backend, path, architecture, message):
    rewrite_metadata(path, architecture=architecture)
    refused(path, numpy_backend, message)


def test_nesting_up_to_the_limit_loads(numpy_backend, tmp_path):
    model = Sequential([Tanh()])
    for _ in range(31):
        model = Sequential([model])
    save_checkpoint(tmp_path / "n.ckpt", model, gpunet.GradientDescent(0.1), epoch=0, seed=0)
    assert repr(load_checkpoint(tmp_path / "n.ckpt", numpy_backend).model) == repr(model)


@pytest.mark.parametrize("dims", [(10 ** 6, 10 ** 6), (5000, 5000)])
def test_layer_sizes_the_arrays_lack_are_refused_before_allocating(numpy_backend, path, dims):
    rewrite_metadata(path, architecture=json.dumps(deep_architecture(linear(*dims))))
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"parameter 0 has shape \(30, 784\) in the file "
                                                  rf"but the architecture needs \({dims[1]}, "
                                                  rf"{dims[0]}\)"):
            load_checkpoint(path, numpy_backend)
        assert tracemalloc.get_traced_memory()[1] < 20 * 2 ** 20
    finally:
        tracemalloc.stop()


def test_layers_that_do_not_chain_are_refused(numpy_backend, tmp_path):
    model = Sequential([Linear(784, 30, backend=numpy_backend), Tanh(),
                        Linear(20, 10, backend=numpy_backend)])
    save_checkpoint(tmp_path / "a.ckpt", model, gpunet.GradientDescent(0.1), epoch=1, seed=0)
    refused(tmp_path / "a.ckpt", numpy_backend, "architecture: Linear(20, 10, dtype=float32) "
            "takes 20 inputs but Linear(784, 30, dtype=float32) before it gives 30")


@pytest.mark.parametrize("dtype", [np.int32, np.float16])
def test_parameters_that_are_not_float32_or_float64_are_refused(numpy_backend, path, dtype):
    tensors = safetensors.numpy.load_file(path)
    tensors["param.0"] = tensors["param.0"].astype(dtype)
    metadata = json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])
    path.write_bytes(safetensors.numpy.save(tensors, metadata=metadata["__metadata__"]))
    with pytest.raises(CheckpointError, match=f"a.ckpt: parameter 0 is {np.dtype(dtype)} in the "
                                              "file; parameters are float32 or float64"):
        load_checkpoint(path, numpy_backend)


def test_the_settings_gpunet_train_writes_and_others_round_trip(numpy_backend, tmp_path):
    config = {**CLI_CONFIG, "note": ["anything", {"else": None}]}
    save_checkpoint(tmp_path / "a.ckpt", Sequential([Linear(784, 10, backend=numpy_backend)]),
                    gpunet.GradientDescent(0.1), epoch=0, seed=int("9" * 4300), config=config)
    loaded = load_checkpoint(tmp_path / "a.ckpt", numpy_backend)
    assert (loaded.config, loaded.seed) == (config, int("9" * 4300))


@pytest.mark.parametrize("change, message", [
    ({"epoch": -1}, "epoch must be a non-negative integer, got '-1'"),
    ({"seed": -2}, "seed must be a non-negative integer, got '-2'"),
    ({"history": [1]}, "history must be a JSON list of objects, got [1]"),
])
def test_metadata_a_load_would_refuse_is_never_saved(numpy_backend, tmp_path, change, message):
    settings = {"epoch": 1, "seed": 0, **change}
    with pytest.raises(CheckpointError) as error:
        save_checkpoint(tmp_path / "a.ckpt", Sequential([Linear(784, 10, backend=numpy_backend)]),
                        gpunet.GradientDescent(0.1), **settings)
    assert str(error.value) == f"{tmp_path / 'a.ckpt'}: invalid checkpoint metadata: {message}"
    assert list(tmp_path.iterdir()) == []


def test_widths_are_those_of_the_first_and_last_linear_layers(numpy_backend):
    assert widths(mnist_model("deep", backend=numpy_backend)) == (784, 10)
    assert widths(Sequential([Sequential([Linear(5, 7, backend=numpy_backend)]), Tanh()])) == (5, 7)
    assert widths(Sequential([Tanh()])) is None
    with pytest.raises(ValueError, match=r"Linear\(6, 2, dtype=float32\) takes 6 inputs but "
                                         r"Linear\(5, 7, dtype=float32\) before it gives 7"):
        widths(Sequential([Linear(5, 7, backend=numpy_backend),
                           Linear(6, 2, backend=numpy_backend)]))


def test_an_architecture_a_load_would_refuse_is_never_saved(numpy_backend, tmp_path):
    model = Sequential([Linear(784, 10, backend=numpy_backend), gpunet.Dropout(0.1, inverted=1)])
    with pytest.raises(CheckpointError, match=r"a.ckpt: invalid checkpoint metadata: architecture: "
                                              r"layers\[1\].inverted must be true or false, got 1"):
        save_checkpoint(tmp_path / "a.ckpt", model, gpunet.GradientDescent(0.1), epoch=1, seed=0)
    assert list(tmp_path.iterdir()) == []

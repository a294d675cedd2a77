"""Checkpoints: exact round trips, atomic replacement, and refusal of anything else."""
import json
import re
import os
import pickle
import struct
import threading

import numpy as np
import pytest
import safetensors.numpy

import gpunet
from gpunet.checkpoint import container
from gpunet.checkpoint import CheckpointError, load_checkpoint
from gpunet.cli import main
from gpunet.models import mnist_model
from helpers.checkpoints import rewrite_metadata, save


@pytest.fixture
def trained(numpy_backend):
    gpunet.seed(0)
    model = mnist_model("deep", backend=numpy_backend)
    optimizer = gpunet.Momentum(0.1, 0.9)
    model.backward(model.forward(np.ones((2, 784))))
    optimizer.step(model)
    return model, optimizer


def test_round_trip(numpy_backend, trained, tmp_path):
    model, optimizer = trained
    save(tmp_path / "a.ckpt", model, optimizer)
    loaded = load_checkpoint(tmp_path / "a.ckpt", numpy_backend)
    for a, b in zip(model.params(), loaded.model.params()):
        np.testing.assert_array_equal(a, b)
        assert b.dtype == np.float32
    np.testing.assert_array_equal(optimizer.updates[0], loaded.optimizer.updates[0])
    assert (loaded.optimizer.lr, loaded.optimizer.mo) == (0.1, 0.9)
    assert (loaded.epoch, loaded.seed) == (3, 7)
    assert loaded.config == {"model": "deep", "batch_size": 32}
    assert loaded.history == [{"epoch": 1, "loss": 0.5}]
    assert loaded.version == gpunet.__version__
    assert repr(loaded.model) == repr(model)


def test_gradient_descent_round_trip(numpy_backend, trained, tmp_path):
    model, _ = trained
    save(tmp_path / "g.ckpt", model, gpunet.GradientDescent(0.3))
    assert load_checkpoint(tmp_path / "g.ckpt", numpy_backend).optimizer.lr == 0.3


@pytest.mark.parametrize("failing", ["os.replace", "write"])
def test_a_failed_save_leaves_the_previous_checkpoint_whole(numpy_backend, trained, tmp_path,
                                                             monkeypatch, failing):
    model, optimizer = trained
    path = tmp_path / "a.ckpt"
    save(path, model, optimizer, epoch=1)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")
    if failing == "os.replace":
        monkeypatch.setattr(os, "replace", fail)
    else:
        monkeypatch.setattr(safetensors.numpy, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        save(path, model, optimizer, epoch=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt"]


class Exploit:
    def __reduce__(self):
        return (os.mkdir, (MARKER,))


MARKER = ""


def test_a_pickle_is_refused_and_never_run(numpy_backend, tmp_path):
    global MARKER
    MARKER = str(tmp_path / "pwned")
    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="pickle file.*never loaded"):
        load_checkpoint(tmp_path / "evil.ckpt", numpy_backend)
    assert not os.path.exists(MARKER)


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_pickles_of_every_protocol_that_starts_with_0x80_are_refused(numpy_backend, tmp_path,
                                                                     protocol):
    (tmp_path / "p.ckpt").write_bytes(pickle.dumps({"param.0": [1.0] * 100}, protocol=protocol))
    with pytest.raises(CheckpointError, match="p.ckpt: this is a pickle file"):
        load_checkpoint(tmp_path / "p.ckpt", numpy_backend)


def pad_header(path, low_bytes):
    """Pad the JSON header of ``path`` with trailing spaces (safetensors allows them)
    to the shortest length whose two low bytes are ``low_bytes``."""
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    length = size + (low_bytes - size) % 0x10000
    path.write_bytes(struct.pack("<Q", length) + data[8:8 + size] + b" " * (length - size)
                     + data[8 + size:])


@pytest.mark.parametrize("low_bytes", [0x0080, 0x0180, 0x0280, 0x0380, 0x0480, 0x0580, 0x0680])
def test_a_checkpoint_whose_first_byte_is_0x80_is_no_pickle(numpy_backend, trained, tmp_path,
                                                           low_bytes):
    model, optimizer = trained
    path = save(tmp_path / "a.ckpt", model, optimizer)
    pad_header(path, low_bytes)
    assert path.read_bytes()[:2] == bytes([0x80, low_bytes >> 8])
    loaded = load_checkpoint(path, numpy_backend)
    for a, b in zip(model.params(), loaded.model.params()):
        np.testing.assert_array_equal(a, b)
    assert (loaded.epoch, loaded.config) == (3, {"model": "deep", "batch_size": 32})


def test_a_checkpoint_whose_first_byte_is_0x80_resumes(fashion_dir, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    small = ["--dataset", "fashion-mnist", "--train-subset", "512", "--test-subset", "256",
             "--batch-size", "64", "--backend", "numpy", "--quiet"]
    assert main(["train", "--epochs", "1", "--save", str(ckpt), *small]) == 0
    pad_header(ckpt, 0x0280)
    assert main(["train", "--resume", str(ckpt), "--epochs", "2", "--save", str(ckpt), *small]) == 0
    assert load_checkpoint(ckpt, gpunet.get_backend("numpy")).epoch == 2


def test_truncated_file(numpy_backend, trained, tmp_path):
    path = save(tmp_path / "a.ckpt", *trained)
    data = path.read_bytes()
    for cut in [4, 100, len(data) - 50]:
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="a.ckpt"):
            load_checkpoint(path, numpy_backend)


def test_missing_file(numpy_backend, tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.ckpt", numpy_backend)


def test_a_directory_is_refused(numpy_backend, tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path}: a directory, not a regular file"):
        load_checkpoint(tmp_path, numpy_backend)


def test_a_device_is_refused(numpy_backend):
    with pytest.raises(CheckpointError, match="/dev/null: a character device, not a regular file"):
        load_checkpoint("/dev/null", numpy_backend)


def test_eval_of_an_endless_device_ends_in_one_line(capsys):
    assert main(["eval", "/dev/zero", "--backend", "numpy", "--quiet"]) == 1
    assert "/dev/zero: a character device, not a regular file" in capsys.readouterr().err


def test_a_fifo_is_refused_without_waiting_for_a_writer(numpy_backend, tmp_path):
    fifo = tmp_path / "pipe.ckpt"
    os.mkfifo(fifo)
    # should loading open the FIFO and wait for a writer, be one after 5 s: a failure, not a hang
    rescue = threading.Timer(5, lambda: os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)))
    rescue.start()
    try:
        with pytest.raises(CheckpointError, match=r"pipe.ckpt: a FIFO, not a regular file"):
            load_checkpoint(fifo, numpy_backend)
    finally:
        rescue.cancel()


def test_a_file_larger_than_any_checkpoint_is_refused(numpy_backend, trained, tmp_path,
                                                      monkeypatch):
    path = save(tmp_path / "a.ckpt", *trained)
    size = path.stat().st_size
    monkeypatch.setattr(container, "MAX_CHECKPOINT", size - 1)
    with pytest.raises(CheckpointError, match=rf"a.ckpt: {size} bytes, more than a checkpoint "
                                              rf"may have \({size - 1}\)"):
        load_checkpoint(path, numpy_backend)
    monkeypatch.setattr(container, "MAX_CHECKPOINT", size)
    assert load_checkpoint(path, numpy_backend).epoch == 3


def test_other_safetensors_files_are_refused(numpy_backend, tmp_path):
    path = tmp_path / "other.safetensors"
    path.write_bytes(safetensors.numpy.save({"w": np.zeros(3, np.float32)}))
    with pytest.raises(CheckpointError, match="not a gpunet checkpoint"):
        load_checkpoint(path, numpy_backend)


def test_wrong_architecture_is_refused(numpy_backend, trained, tmp_path):
    path = save(tmp_path / "a.ckpt", *trained)
    wide = {"layer": "Sequential", "layers": [
        {"layer": "Linear", "input_dim": 784, "output_dim": 64, "init": "xavier"},
        {"layer": "Tanh"}, {"layer": "Linear", "input_dim": 64, "output_dim": 10, "init": "xavier"}]}
    rewrite_metadata(path, architecture=json.dumps(wide))
    with pytest.raises(CheckpointError, match=r"architecture has 4 parameters but the file holds 6"):
        load_checkpoint(path, numpy_backend)
    wide["layers"] = wide["layers"][:1] + [{"layer": "Linear", "input_dim": 64, "output_dim": 10,
                                            "init": "xavier"}] * 2
    rewrite_metadata(path, architecture=json.dumps(wide))
    with pytest.raises(CheckpointError, match=r"parameter 0 has shape \(30, 784\) in the file "
                                              r"but the architecture needs \(64, 784\)"):
        load_checkpoint(path, numpy_backend)


@pytest.mark.parametrize("architecture", ['{"layer": "os.system"}', "not json",
                                          '{"layer": "Linear", "input_dim": 784}'])
def test_unknown_or_bad_layer_descriptions_are_refused(numpy_backend, trained, tmp_path,
                                                       architecture):
    path = save(tmp_path / "a.ckpt", *trained)
    rewrite_metadata(path, architecture=architecture)
    with pytest.raises(CheckpointError, match="invalid checkpoint metadata"):
        load_checkpoint(path, numpy_backend)


def test_momentum_state_that_does_not_fit_is_refused(numpy_backend, trained, tmp_path):
    model, optimizer = trained
    optimizer.updates = [np.zeros(5, np.float32)]
    path = save(tmp_path / "a.ckpt", model, optimizer)
    with pytest.raises(CheckpointError, match=r"a\.ckpt: the momentum state has shapes "
                                              r"\[\(5,\)\], the model needs \[\(23970,\)\]$"):
        load_checkpoint(path, numpy_backend)


def write_container(path, header, data=b""):
    """``path`` written as a safetensors container: its header's length, the header, data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


@pytest.mark.parametrize("name, contents, message", [
    ("an empty header", struct.pack("<Q", 0), "not a safetensors file (its header is not JSON)"),
    ("seven bytes", b"\x01" * 7, "too short to be a checkpoint (7 bytes)"),
    ("header longer than the file", struct.pack("<Q", 12) + b"{}  ", "not a safetensors file "
                                                                     "(or truncated): header of 12 "
                                                                     "bytes in a 12-byte file"),
    ("header length with the top bit set", struct.pack("<Q", 2 ** 63 + 2) + b"{}",
     f"not a safetensors file (or truncated): header of {2 ** 63 + 2} bytes in a 10-byte file"),
    ("header not JSON", struct.pack("<Q", 2) + b"{]", "not a safetensors file (its header is "
                                                      "not JSON)"),
    ("header a JSON list", struct.pack("<Q", 2) + b"[]", "not a gpunet checkpoint (no metadata)"),
])
def test_containers_that_are_no_checkpoint_are_named(numpy_backend, tmp_path, name, contents,
                                                     message):
    (tmp_path / "x.ckpt").write_bytes(contents)
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(tmp_path / 'x.ckpt'))}: "
                                              f"{re.escape(message)}$"):
        load_checkpoint(tmp_path / "x.ckpt", numpy_backend)


def test_exact_messages_for_pickles_other_formats_and_missing_arrays(numpy_backend, trained,
                                                                     tmp_path):
    (tmp_path / "p.ckpt").write_bytes(pickle.dumps([1], protocol=4))
    with pytest.raises(CheckpointError, match=r"p\.ckpt: this is a pickle file; gpunet "
                                              r"checkpoints are safetensors files and pickles "
                                              r"are never loaded$"):
        load_checkpoint(tmp_path / "p.ckpt", numpy_backend)
    write_container(tmp_path / "f.ckpt", {"__metadata__": {"format": "other/2"}})
    with pytest.raises(CheckpointError, match=r"f\.ckpt: not a gpunet checkpoint "
                                              r"\(format 'other/2'\)$"):
        load_checkpoint(tmp_path / "f.ckpt", numpy_backend)
    path = save(tmp_path / "a.ckpt", *trained)
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    header["renamed.1"] = header.pop("param.1")  # the same bytes, under another name
    write_container(path, header, data[8 + size:])
    with pytest.raises(CheckpointError, match=r"a\.ckpt: missing array 'param\.1'$"):
        load_checkpoint(path, numpy_backend)


def test_a_checkpoint_loads_onto_the_backend_asked_for(numpy_backend, trained, tmp_path,
                                                       monkeypatch):
    """And saves from the arrays' own backend: not the default, which $GPUNET_BACKEND
    names here, and which cannot run without a GPU."""
    monkeypatch.setenv("GPUNET_BACKEND", "cupy")
    path = save(tmp_path / "a.ckpt", *trained)
    loaded = load_checkpoint(path, numpy_backend)
    assert all(type(p) is np.ndarray for p in loaded.model.params())


def test_the_momentum_and_its_state_round_trip(numpy_backend, tmp_path):
    model = gpunet.Sequential([gpunet.Linear(3, 2, backend=numpy_backend)])
    optimizer = gpunet.Momentum(0.25, 0.5)
    model.backward(model.forward(np.ones((1, 3))))
    optimizer.step(model)
    path = save(tmp_path / "m.ckpt", model, optimizer)
    loaded = load_checkpoint(path, numpy_backend).optimizer
    assert (loaded.lr, loaded.mo) == (0.25, 0.5)
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    header["optimizer.update.1"] = header.pop("optimizer.update.0")  # a gap in the numbers
    write_container(path, header, data[8 + size:])
    with pytest.raises(CheckpointError, match=r"m\.ckpt: missing array 'optimizer\.update\.0'$"):
        load_checkpoint(path, numpy_backend)


@pytest.mark.parametrize("field", ["history", "optimizer"])
def test_a_field_that_is_not_json_is_named(numpy_backend, trained, tmp_path, field):
    path = save(tmp_path / "a.ckpt", *trained)
    rewrite_metadata(path, **{field: "{"})
    with pytest.raises(CheckpointError, match=rf"a\.ckpt: invalid checkpoint metadata: {field} "
                                              r"is not JSON \("):
        load_checkpoint(path, numpy_backend)


def test_only_known_optimizers_are_saved(numpy_backend, trained, tmp_path):
    class Adam(gpunet.Optimizer):
        pass
    with pytest.raises(ValueError, match=r"^cannot save a Adam optimizer$"):
        save(tmp_path / "a.ckpt", trained[0], Adam())
    assert not (tmp_path / "a.ckpt").exists()

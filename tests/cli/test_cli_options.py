"""The option helpers the commands share (gpunet/cli/options.py)."""
import argparse
from pathlib import Path

import pytest

from gpunet.cli import main
from gpunet.cli.options import (UsageError, count, distinct_files, existing_dir, os_error,
                                same_file)
from gpunet.data.datasets import data_folders
from gpunet.data.sources import SOURCES


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
                                  "train-images.idx3-ubyte", "fashion-mnist/t10k-labels.idx1-ubyte"])
def test_an_output_may_not_be_a_dataset_file_under_any_of_its_names(tmp_path: Path, name):
    with pytest.raises(UsageError, match="--save and a dataset file in --data-dir are the same file"):
        distinct_files([("--save", tmp_path / name)], tmp_path)


def test_other_outputs_in_the_data_folder_are_allowed(tmp_path: Path):
    distinct_files([("--save", tmp_path / "run.ckpt"), ("--metrics", tmp_path / "run.json")],
                   tmp_path)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """No $GPUNET_DATA, and a download cache of this test's own."""
    monkeypatch.delenv("GPUNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("folder, where", [
    ("data", "$GPUNET_DATA"), ("data/mnist", "$GPUNET_DATA/mnist"),
    ("cache/gpunet/fashion-mnist", "the cache")])
def test_an_output_may_not_be_a_dataset_file_of_any_folder_it_is_read_from(places, monkeypatch,
                                                                          folder, where):
    if where.startswith("$"):
        monkeypatch.setenv("GPUNET_DATA", str(places / "data"))
    path = places / folder / "t10k-labels.idx1-ubyte"
    with pytest.raises(UsageError, match=f"--metrics and a dataset file in {places / folder} "
                                         "are the same file"):
        distinct_files([("--metrics", path)])


def test_the_systems_copy_is_a_dataset_folder_too(places):
    path = SOURCES["fashion-mnist"].system_dirs[0] / "train-images-idx3-ubyte.gz"
    with pytest.raises(UsageError, match="--save and a dataset file in "):
        distinct_files([("--save", path)])


def test_only_the_folders_that_are_read_count(places, monkeypatch):
    """With --data-dir, the cache is not read; with $GPUNET_DATA, neither are the cache
    and the system's copy."""
    cached = places / "cache" / "gpunet" / "mnist" / "train-images-idx3-ubyte.gz"
    distinct_files([("--save", cached)], places / "given")
    monkeypatch.setenv("GPUNET_DATA", str(places / "data"))
    distinct_files([("--save", cached)])
    assert data_folders() == [places / "data", places / "data" / "mnist",
                              places / "data" / "fashion-mnist"]


def test_a_link_to_a_dataset_file_is_that_file(places):
    (places / "given").mkdir()
    (places / "given" / "train-labels-idx1-ubyte").write_bytes(b"data")
    (places / "out.json").symlink_to(places / "given" / "train-labels-idx1-ubyte")
    with pytest.raises(UsageError, match="are the same file"):
        distinct_files([("--metrics", places / "out.json")], places / "given")


def test_symlink_loops_are_compared_without_an_error(places):
    (places / "loop").symlink_to("loop")
    distinct_files([("--save", places / "loop"), ("--metrics", places / "m.json")])
    with pytest.raises(UsageError, match="--save and --resume are the same file"):
        distinct_files([("--save", places / "loop"), ("--resume", places / "loop")])
    assert same_file(places / "loop", places / "." / "loop")
    assert not same_file(places / "loop", places / "m.json")


def test_train_refuses_to_write_over_the_data_it_reads(places, monkeypatch, capsys):
    """(A folder of this test's own: never the system's copy, which a regression would
    overwrite.)"""
    data = places / "data"
    data.mkdir()
    target = data / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(b"the data")
    monkeypatch.setenv("GPUNET_DATA", str(data))
    assert main(["train", "--dataset", "fashion-mnist", "--epochs", "1", "--train-subset", "100",
                 "--offline", "--metrics", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"gpunet: error: --metrics and a dataset file in {data} are the same file, "
        f"{target}: one would overwrite the other\n")
    assert target.read_bytes() == b"the data"


@pytest.mark.parametrize("text, value", [("1e3", 1000), ("1000", 1000), ("1_000", 1000),
                                         ("2.0", 2), ("1E+2", 100)])
def test_a_count_is_any_whole_number(text, value):
    assert count(1)(text) == value


@pytest.mark.parametrize("text, message", [
    ("1.5", "expected an integer, got '1.5'"), ("nan", "expected an integer, got 'nan'"),
    ("inf", "expected an integer, got 'inf'"), ("1e-3", "expected an integer, got '1e-3'"),
    ("1e99999999999", "expected an integer, got '1e99999999999'"),
    ("0", "must be at least 1, got 0"), ("1e12", "must be at most 1,000, got 1e12")])
def test_a_count_that_is_not_a_whole_number_in_range_is_refused(text, message):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        count(1, 1000)(text)
    assert str(error.value) == message


def test_a_data_dir_that_cannot_be_looked_at_is_one_line(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    for text, message in [(str(tmp_path / "loop"), "a symlink loop"),
                          ("x" * 5000, "a name too long for the system")]:
        with pytest.raises(argparse.ArgumentTypeError) as error:
            existing_dir(text)
        assert str(error.value) == f"directory {text!r}: {message}"


def test_an_os_error_is_one_line_whatever_the_name():
    assert os_error(FileNotFoundError(2, "No such file or directory", "a\nb")) == \
        "a\\nb: No such file or directory"

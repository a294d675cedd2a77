"""The option helpers the commands share (gpunet/cli/options.py)."""
from pathlib import Path

import pytest

from gpunet.cli.options import UsageError, distinct_files


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
                                  "train-images.idx3-ubyte", "fashion-mnist/t10k-labels.idx1-ubyte"])
def test_an_output_may_not_be_a_dataset_file_under_any_of_its_names(tmp_path: Path, name):
    with pytest.raises(UsageError, match="--save and a dataset file in --data-dir are the same file"):
        distinct_files([("--save", tmp_path / name)], tmp_path)


def test_other_outputs_in_the_data_folder_are_allowed(tmp_path: Path):
    distinct_files([("--save", tmp_path / "run.ckpt"), ("--metrics", tmp_path / "run.json")],
                   tmp_path)

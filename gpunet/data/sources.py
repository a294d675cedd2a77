"""The known datasets: their files, published checksums, mirrors and system copies."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import DatasetError
from .idx import Kind

# RawDataset field -> file name; every dataset of the MNIST format has these four.
FILE_NAMES = {"train_images": "train-images-idx3-ubyte.gz",
              "train_labels": "train-labels-idx1-ubyte.gz",
              "test_images": "t10k-images-idx3-ubyte.gz",
              "test_labels": "t10k-labels-idx1-ubyte.gz"}
Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")


def stored_names(name: str) -> tuple[str, str, str]:
    """The names a data file published as ``name`` (.gz) is read under, in order:
    that, without .gz, and Kaggle's uncompressed copy's (``.idx3`` for ``-idx3``)."""
    raw = name.removesuffix(".gz")
    return name, raw, raw.replace("-idx", ".idx")


@dataclass(frozen=True)
class DataFile:
    role: str               # the RawDataset field it fills
    name: str               # the published .gz name
    md5: str                # MD5 of the published .gz file
    raw_md5: str | None     # MD5 of the uncompressed IDX bytes, where known

    @property
    def names(self) -> tuple[str, str, str]:
        return stored_names(self.name)

    @property
    def kind(self) -> Kind:
        return "images" if self.role.endswith("images") else "labels"

    @property
    def split(self) -> Split:
        return "train" if self.role.startswith("train") else "test"


@dataclass(frozen=True)
class Source:
    name: str
    files: tuple[DataFile, ...]
    mirrors: tuple[str, ...]            # base URLs, tried in order; the file name is appended
    class_names: tuple[str, ...] = tuple("0123456789")  # what each label stands for
    system_dirs: tuple[Path, ...] = ()  # read-only copies installed by the system
    install_hint: str = ""              # another way to get the files, for error messages

    def files_of(self, splits: tuple[Split, ...]) -> tuple[DataFile, ...]:
        """The files that hold ``splits``; ValueError for a split that is not one of SPLITS."""
        unknown = set(splits) - set(SPLITS)
        if unknown or not splits:
            raise ValueError(f"splits must be some of {', '.join(SPLITS)}, got {splits!r}")
        return tuple(file for file in self.files if file.split in splits)


def _files(md5: dict[str, str], raw_md5: dict[str, str]) -> tuple[DataFile, ...]:
    return tuple(DataFile(role, name, md5[role], raw_md5.get(role))
                 for role, name in FILE_NAMES.items())


SOURCES: dict[str, Source] = {
    "mnist": Source(
        name="mnist",
        files=_files(
            md5={"train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                 "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
                 "test_images": "9fb629c4189551a2d022fa330f9573f3",
                 "test_labels": "ec29112dd5afa0611ce80d1b7f02629c"},
            raw_md5={"train_images": "6bbc9ace898e44ae57da46a324031adb",
                     "train_labels": "a25bea736e30d166cdddb491f175f624",
                     "test_images": "2646ac647ad5339dbf082846283269ea",
                     "test_labels": "27ae3e4e09519cfbb04c329615203637"}),
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/")),
    "fashion-mnist": Source(
        name="fashion-mnist",
        files=_files(
            md5={"train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                 "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
                 "test_images": "bef4ecab320f06d8554ea6380940ec79",
                 "test_labels": "bb300cfdad3c16e7a12a480ee83cd310"},
            # Debian's dataset-fashion-mnist recompressed the .gz files; the IDX bytes are the same.
            raw_md5={"train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                     "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
                     "test_images": "8181f5470baa50b63fa0f6fddb340f0a",
                     "test_labels": "15d484375f8d13e6eb1aabb0c3f46965"}),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                 "data/fashion/"),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"),
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        install_hint="apt-get install dataset-fashion-mnist"),
}


def get_source(name: str) -> Source:
    """The registry entry of dataset ``name``; DatasetError listing the known names if unknown."""
    try:
        return SOURCES[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: "
                           + ", ".join(SOURCES)) from None

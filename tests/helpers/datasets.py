"""A fake 'mnist': small valid MNIST-format files registered with their own checksums."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gpunet.data.sources import FILE_NAMES, SOURCES, DataFile, Source
from helpers.idx import gz, idx_bytes


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Fake:
    """Small valid MNIST-format files, registered as 'mnist' with their own checksums."""
    arrays: dict[str, np.ndarray]
    raw: dict[str, bytes]   # file name -> IDX bytes
    gz: dict[str, bytes]    # file name -> published .gz bytes
    source: Source

    def register(self, monkeypatch, **changes) -> None:
        monkeypatch.setitem(SOURCES, "mnist", replace(self.source, **changes))


def make_fake(monkeypatch, train: int = 6, train_labels: int = 6) -> Fake:
    rng = np.random.default_rng(0)
    sizes = {"train_images": (train, 28, 28), "train_labels": (train_labels,),
             "test_images": (4, 28, 28), "test_labels": (4,)}
    arrays = {role: rng.integers(0, 256 if role.endswith("images") else 10, size, dtype=np.uint8)
              for role, size in sizes.items()}
    raw = {FILE_NAMES[role]: idx_bytes(array) for role, array in arrays.items()}
    packed = {name: gz(data) for name, data in raw.items()}
    files = tuple(DataFile(role, name, md5(packed[name]), md5(raw[name]))
                  for role, name in FILE_NAMES.items())
    fake = Fake(arrays, raw, packed, Source("mnist", files, mirrors=()))
    fake.register(monkeypatch)
    return fake


def put(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory

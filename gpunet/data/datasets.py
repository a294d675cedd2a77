"""MNIST-format datasets: find (or download) the four files, check them, load them."""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import download_file
from .errors import DatasetError
from .idx import GZIP_MAGIC, read_idx
from .sources import DataFile, Source, get_source

ENV_VAR = "GPUNET_DATA"


@dataclass(frozen=True, eq=False)
class RawDataset:
    """A dataset as stored: uint8 images (N, 28, 28) and uint8 labels (N,) in 0..9."""
    name: str
    directory: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_raw(name: str, data_dir: str | os.PathLike | None = None, *,
             download: bool = True, progress: bool = True) -> RawDataset:
    """Dataset ``name`` from the first of search_dirs() holding it, else downloaded.

    Every file must match its published checksum; any problem raises DatasetError.
    """
    source = get_source(name)
    directory = find_dataset(name, data_dir)
    if directory is None:
        if not download:
            raise DatasetError(_not_found(source, data_dir, "downloading is off"))
        try:
            directory = _download(source, data_dir, progress)
        except DatasetError as exc:
            raise DatasetError(_not_found(source, data_dir, str(exc))) from None
    arrays = {}
    for file in source.files:
        path = _present(directory, file)
        _verify(path, file)
        arrays[file.role] = read_idx(path, kind=file.kind)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DatasetError(f"{directory}: {len(images)} {split} images "
                               f"but {len(labels)} {split} labels")
    return RawDataset(source.name, directory, **arrays)


def find_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first of search_dirs() that holds all four files of ``name``, or None."""
    files = get_source(name).files
    for directory in search_dirs(name, data_dir):
        if all(_present(directory, file) for file in files):
            return directory
    return None


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where ``name`` is looked for, in order: ``data_dir``, $GPUNET_DATA (each also
    with ``/<name>``), the per-user cache, then the system's copies."""
    source = get_source(name)
    dirs = []
    for root in (_data_dir(data_dir), _env_dir()):
        if root is not None:
            dirs += [root, root / source.name]
    return list(dict.fromkeys([*dirs, cache_dir(source.name), *source.system_dirs]))


def cache_dir(name: str) -> Path:
    """The per-user cache of ``name``: $XDG_CACHE_HOME (default ~/.cache)/gpunet/<name>."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "gpunet" / name


def _data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    if data_dir is None:
        return None
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DatasetError(f"data directory {path} does not exist")
    return path


def _env_dir() -> Path | None:
    value = os.environ.get(ENV_VAR)
    return Path(value).expanduser() if value else None


def _present(directory: Path, file: DataFile) -> Path | None:
    """``file`` in ``directory``, compressed or not, if there."""
    for path in (directory / file.name, directory / file.raw_name):
        if path.is_file():
            return path
    return None


def _verify(path: Path, file: DataFile) -> None:
    """Accept the published .gz bytes, or IDX bytes matching the known uncompressed MD5."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror})") from None
    actual, expected = hashlib.md5(data).hexdigest(), file.md5
    if actual == expected:
        return
    if file.raw_md5 is not None:
        raw_md5 = _raw_md5(data)
        if raw_md5 == file.raw_md5:
            return
        actual += f" (uncompressed {raw_md5})"
        expected += f" (uncompressed {file.raw_md5})"
    raise DatasetError(f"{path}: checksum mismatch, MD5 {actual}, expected {expected}: "
                       f"the file is corrupt or not the published one; "
                       f"delete it to download it again, or replace it with a good copy")


def _raw_md5(data: bytes) -> str:
    """MD5 of the IDX bytes in ``data`` (gzip-compressed or not), or why there are none."""
    try:
        return hashlib.md5(gzip.decompress(data) if data[:2] == GZIP_MAGIC else data).hexdigest()
    except (EOFError, OSError, zlib.error) as exc:
        return f"unknown, broken gzip stream: {exc}"


def _download(source: Source, data_dir: str | os.PathLike | None, progress: bool) -> Path:
    directory = _download_dir(source.name, data_dir)
    for file in source.files:
        if _present(directory, file) is None:
            download_file(file.name, source.mirrors, file.md5, directory, progress=progress)
    return directory


def _download_dir(name: str, data_dir: str | os.PathLike | None) -> Path:
    """The first writable of ``data_dir``, $GPUNET_DATA/<name> and the cache."""
    env = _env_dir()
    candidates = (_data_dir(data_dir), env / name if env is not None else None, cache_dir(name))
    problems = []
    for directory in filter(None, candidates):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problems.append(f"{directory} ({exc.strerror})")
            continue
        if os.access(directory, os.W_OK):
            return directory
        problems.append(f"{directory} (not writable)")
    raise DatasetError("no writable directory to download into: " + "; ".join(problems))


def _not_found(source: Source, data_dir: str | os.PathLike | None, reason: str) -> str:
    places = ", ".join(str(d) for d in search_dirs(source.name, data_dir))
    names = ", ".join(file.name for file in source.files)
    other = f", or {source.install_hint}" if source.install_hint else ""
    return (f"{source.name} not found (looked in {places}) and not downloaded ({reason}); "
            f"put its four files ({names}, or the same without .gz) in one of those "
            f"directories, or pass --data-dir or set {ENV_VAR}{other}")

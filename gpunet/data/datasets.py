"""MNIST-format datasets: find (or download) the files a split needs, check them, load them."""
from __future__ import annotations

import hashlib
import os
import zlib
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..files import cache_dir, file_type
from .download import CHUNK_BYTES, download_file
from .errors import DatasetError
from .idx import MAX_EXAMPLES, Kind, open_data, open_idx, read_idx, size_limit
from .sources import SOURCES, SPLITS, DataFile, Source, Split, get_source

ENV_VAR = "GPUNET_DATA"


@dataclass(frozen=True, eq=False)
class RawDataset:
    """A dataset as stored: uint8 images (N, 28, 28) and uint8 labels (N,) in 0..9,
    None for a split not loaded."""
    name: str
    directory: Path
    train_images: np.ndarray | None = None
    train_labels: np.ndarray | None = None
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None


def load_raw(name: str, data_dir: str | os.PathLike | None = None, *,
             splits: tuple[Split, ...] = SPLITS, download: bool = True,
             progress: bool = True, dir_option: str = "data_dir=") -> RawDataset:
    """The ``splits`` of dataset ``name`` (only their files are needed) from the first
    of search_dirs() holding them, else with the missing files downloaded into
    ``data_dir``, else $GPUNET_DATA/<name>, else the per-user cache; ``directory``
    is the directory used.

    Every file must match its published checksum; any problem raises DatasetError.
    ``dir_option`` is how the caller's user gives ``data_dir`` ("data_dir=" in
    Python, "--data-dir" on the command line), for the error when nothing is found.
    """
    source = get_source(name)
    files = source.files_of(splits)
    directory = find_dataset(name, data_dir, splits) or _complete(source, files, data_dir,
                                                                  download, progress, dir_option)
    arrays = {}
    for file in files:
        path = _present(directory, file)
        _verify(path, file)
        arrays[file.role] = read_idx(path, kind=file.kind)
    for split in splits:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DatasetError(f"{directory}: {len(images)} {split} images "
                               f"but {len(labels)} {split} labels")
    return RawDataset(source.name, directory, **arrays)


def find_dataset(name: str, data_dir: str | os.PathLike | None = None,
                 splits: tuple[Split, ...] = SPLITS) -> Path | None:
    """The first of search_dirs() that holds the files of ``splits`` of ``name``, or None."""
    files = get_source(name).files_of(splits)
    for directory in search_dirs(name, data_dir):
        if all(_present(directory, file) for file in files):
            return directory
    return None


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where ``name`` is looked for: ``data_dir``, else $GPUNET_DATA, each also with
    ``/<name>`` and nothing else; only when neither is given, the per-user cache,
    then the system's copies."""
    source = get_source(name)
    root = _given_dir(data_dir)
    if root is not None:
        return [root, root / source.name]
    return [cache_dir(source.name), *source.system_dirs]


def data_folders(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every folder that a known dataset may be read from or downloaded into, given
    ``data_dir`` (search_dirs of each); none where ``data_dir`` or $GPUNET_DATA is
    no directory, as nothing is read then."""
    folders: dict[Path, None] = {}
    for name in SOURCES:
        with suppress(DatasetError):
            folders.update(dict.fromkeys(search_dirs(name, data_dir)))
    return list(folders)


def _given_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """``data_dir``, which must be a directory, else $GPUNET_DATA, which may not exist
    yet; None if neither is given."""
    if data_dir is not None:
        path, what = Path(data_dir).expanduser(), "data directory"
        if not path.exists():
            raise DatasetError(f"{what} {path} does not exist")
    elif os.environ.get(ENV_VAR):
        path, what = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        return None
    if path.exists() and not path.is_dir():
        raise DatasetError(f"{what} {path} is {file_type(path.stat().st_mode)}, not a directory")
    return path


def _present(directory: Path, file: DataFile) -> Path | None:
    """``file`` in ``directory`` under one of its names (``DataFile.names``), if there:
    whatever has that name, so that a directory or FIFO in its place is refused, not
    skipped."""
    for path in (directory / name for name in file.names):
        if os.path.lexists(path):  # a symlink loop too, for open_regular to refuse
            return path
    return None


def _verify(path: Path, file: DataFile) -> None:
    """Accept the published .gz bytes, or IDX bytes matching the known uncompressed MD5."""
    try:
        with open_data(path) as stream:
            actual, expected = _md5(stream, path, file.kind, stored=True), file.md5
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror})") from None
    if actual == expected:
        return
    if file.raw_md5 is not None:
        raw_md5 = _raw_md5(path, file.kind)
        if raw_md5 == file.raw_md5:
            return
        actual += f" (uncompressed {raw_md5})"
        expected += f" (uncompressed {file.raw_md5})"
    raise DatasetError(f"{path}: checksum mismatch, MD5 {actual}, expected {expected}: "
                       f"the file is corrupt or not the published one; "
                       f"delete it to download it again, or replace it with a good copy")


def _raw_md5(path: Path, kind: Kind) -> str:
    """MD5 of the IDX bytes in ``path`` (gzip-compressed or not), or why there are none."""
    try:
        with open_idx(path) as stream:
            return _md5(stream, path, kind)
    except (EOFError, OSError, zlib.error) as exc:
        return f"unknown, broken gzip stream: {exc}"


def _md5(stream: BinaryIO, path: Path, kind: Kind, stored: bool = False) -> str:
    """MD5 of the bytes of ``stream``, read in chunks, with DatasetError as soon
    as they are more than an MNIST-format file of ``kind`` holds: its IDX bytes,
    or (``stored``) any copy of them as a file holds them, gzip-compressed or
    not (deflate adds at most 5 bytes per 65,535, and gzip a header)."""
    limit = sum(size_limit(kind))
    as_what = "uncompressed"
    if stored:
        limit, as_what = limit + limit // 1000 + 4096, "as stored, compressed or not"
    digest, size = hashlib.md5(), 0
    while chunk := stream.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise DatasetError(f"{path}: too large: more than {limit} bytes {as_what}, "
                               f"the most {MAX_EXAMPLES} MNIST {kind} take")
        digest.update(chunk)
    return digest.hexdigest()


def _complete(source: Source, files: tuple[DataFile, ...], data_dir: str | os.PathLike | None,
              download: bool, progress: bool, dir_option: str) -> Path:
    """``data_dir``, else $GPUNET_DATA/<name>, else the per-user cache, with those of
    ``files`` it lacks downloaded into it."""
    root = _given_dir(data_dir)
    if root is None:
        directory = cache_dir(source.name)
    else:
        directory = root if data_dir is not None else root / source.name
    missing = [file for file in files if _present(directory, file) is None]
    try:
        if not download:
            raise DatasetError("downloading is off")
        _download(source, missing, directory, progress)
    except DatasetError as exc:
        if root is None:
            raise DatasetError(_not_found(source, files, str(exc), dir_option)) from None
        names = ", ".join(file.name for file in missing)
        raise DatasetError(f"{source.name}: {names} missing from {directory} and not downloaded "
                           f"({exc}); no other place is looked in when a data directory "
                           f"is given") from None
    return directory


def _download(source: Source, files: list[DataFile], directory: Path, progress: bool) -> None:
    """Download ``files`` into ``directory``, creating it if need be; when that fails
    (Ctrl-C too), the directories it created are removed again if they are empty."""
    created = [path for path in (directory, *directory.parents) if not path.exists()]
    try:
        _make_writable(directory)
        for file in files:
            download_file(file.name, source.mirrors, file.md5, directory, progress=progress)
    except BaseException:
        for path in created:  # deepest first; rmdir removes only empty directories
            with suppress(OSError):
                path.rmdir()
        raise


def _make_writable(directory: Path) -> None:
    """Create ``directory`` if need be; DatasetError if it cannot be written to."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create {directory} ({exc.strerror})") from None
    if not os.access(directory, os.W_OK):
        raise DatasetError(f"{directory} is not writable")


def _not_found(source: Source, files: tuple[DataFile, ...], reason: str, dir_option: str) -> str:
    """The files needed, which of them each place looked in lacks, why they were not
    downloaded, and the ways to get them (``dir_option`` naming the data directory)."""
    directories = search_dirs(source.name)
    places = ", ".join(f"{directory} ({_lacking(directory, files)})" for directory in directories)
    other = f", or {source.install_hint}" if source.install_hint else ""
    return (f"{source.name} not found: it needs {', '.join(file.name for file in files)} "
            f"(or the same without .gz); looked in {places}; not downloaded ({reason}); "
            f"put them in {directories[0]}, pass {dir_option} or set {ENV_VAR}{other}")


def _lacking(directory: Path, files: tuple[DataFile, ...]) -> str:
    """Which of ``files`` ``directory`` lacks, in words."""
    if not directory.is_dir():
        return "no such directory"
    missing = [file.name for file in files if _present(directory, file) is None]
    return "none of them" if len(missing) == len(files) else "missing " + ", ".join(missing)

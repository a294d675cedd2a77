"""IDX files (the MNIST format), gzip-compressed or raw, checked before use.

Layout: two zero bytes, a type code, the number of dimensions d, then d
big-endian uint32 sizes, then the values, big-endian, row-major.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, Literal

import numpy as np

from ..files import Unreadable, open_regular
from .errors import DatasetError

TYPE_CODES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
MAX_EXAMPLES = 60_000  # the most in one file: the training sets of MNIST and Fashion-MNIST

Kind = Literal["images", "labels"]


def read_idx(path: str | os.PathLike, kind: Kind | None = None) -> np.ndarray:
    """The array stored in IDX file ``path`` (native byte order), read as a stream.

    ``kind='images'`` also requires uint8 images (N, 28, 28);
    ``kind='labels'`` requires uint8 labels (N,) holding 0..9. No file may hold
    more data than MAX_EXAMPLES of its kind (images if none) take.
    Any problem raises DatasetError naming the file.
    """
    try:
        with open_idx(path) as stream:
            array = _parse(stream, path, kind)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read it ({exc})") from None
    array = array.astype(array.dtype.newbyteorder("="), copy=False)
    if kind is not None:
        _check_kind(array, kind, path)
    return array


def size_limit(kind: Kind | None) -> tuple[int, int]:
    """The header bytes and the most data bytes of an MNIST-format file of ``kind``
    (images if None): MAX_EXAMPLES labels or images."""
    if kind == "labels":
        return 8, MAX_EXAMPLES
    return 16, MAX_EXAMPLES * math.prod(IMAGE_SHAPE)


def open_data(path: str | os.PathLike) -> io.BufferedReader:
    """Regular file ``path`` opened to read; DatasetError naming it otherwise."""
    try:
        return open_regular(path)
    except Unreadable as exc:
        raise DatasetError(str(exc)) from None


@contextmanager
def open_idx(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """The IDX bytes of regular file ``path``, decompressed as they are read if gzip-compressed."""
    with open_data(path) as file:
        if file.peek(2)[:2] == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=file) as stream:
                yield stream
        else:
            yield file


def _parse(stream: BinaryIO, path: str | os.PathLike, kind: Kind | None) -> np.ndarray:
    """The array in ``stream``: its header, then the data the header announces, if
    within size_limit(kind), and no more (at most one byte past them is read)."""
    head = stream.read(4)
    if len(head) < 4:
        raise DatasetError(f"{path}: {len(head)} bytes is too short for an IDX header")
    if head[0] != 0 or head[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (magic number 0x{head.hex()})")
    code, ndim = head[2], head[3]
    if code not in TYPE_CODES:
        raise DatasetError(f"{path}: unknown IDX type code 0x{code:02x}; known codes: "
                           + ", ".join(f"0x{c:02x}" for c in TYPE_CODES))
    sizes = stream.read(4 * ndim)
    if ndim == 0 or len(sizes) < 4 * ndim:
        raise DatasetError(f"{path}: IDX header with {ndim} dimensions does not fit "
                           f"in {4 + len(sizes)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(sizes, ">u4"))
    dtype = TYPE_CODES[code]
    expected, limit = math.prod(shape) * dtype.itemsize, size_limit(kind)[1]
    if expected > limit:
        raise DatasetError(f"{path}: too large: dimensions {shape} of {dtype.name} need "
                           f"{expected} bytes of data, more than the {limit} of "
                           f"{MAX_EXAMPLES} MNIST {kind or 'images'}")
    data = stream.read(expected)
    if len(data) < expected:
        raise DatasetError(f"{path}: truncated: dimensions {shape} of {dtype.name} need "
                           f"{expected} bytes of data, the file has {len(data)}")
    if stream.read(1):
        raise DatasetError(f"{path}: has trailing bytes: dimensions {shape} of {dtype.name} "
                           f"need {expected} bytes of data, the file has more")
    return np.frombuffer(data, dtype).reshape(shape)


def _check_kind(array: np.ndarray, kind: Kind, path: str | os.PathLike) -> None:
    if kind == "images":
        if array.shape[1:] != IMAGE_SHAPE or array.dtype != np.uint8:
            raise DatasetError(f"{path}: expected uint8 images (N, 28, 28), "
                               f"got {array.dtype.name} {array.shape}")
        return
    if array.ndim != 1 or array.dtype != np.uint8:
        raise DatasetError(f"{path}: expected uint8 labels (N,), got {array.dtype.name} {array.shape}")
    bad = np.flatnonzero(array >= NUM_CLASSES)
    if bad.size:
        raise DatasetError(f"{path}: label {array[bad[0]]} at index {bad[0]} is outside "
                           f"0..{NUM_CLASSES - 1}")

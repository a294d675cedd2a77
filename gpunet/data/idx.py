"""IDX files (the MNIST format), gzip-compressed or raw, checked before use.

Layout: two zero bytes, a type code, the number of dimensions d, then d
big-endian uint32 sizes, then the values, big-endian, row-major.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from typing import Literal

import numpy as np

from .errors import DatasetError

TYPE_CODES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"
NUM_CLASSES = 10

Kind = Literal["images", "labels"]


def read_idx(path: str | os.PathLike, kind: Kind | None = None) -> np.ndarray:
    """The array stored in IDX file ``path`` (native byte order).

    ``kind='images'`` also requires uint8 images (N, rows, cols);
    ``kind='labels'`` requires uint8 labels (N,) holding 0..9.
    Any problem raises DatasetError naming the file.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (magic number 0x{data[:4].hex()})")
    code, ndim = data[2], data[3]
    if code not in TYPE_CODES:
        raise DatasetError(f"{path}: unknown IDX type code 0x{code:02x}; known codes: "
                           + ", ".join(f"0x{c:02x}" for c in TYPE_CODES))
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetError(f"{path}: IDX header with {ndim} dimensions does not fit "
                           f"in {len(data)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    dtype = TYPE_CODES[code]
    expected = math.prod(shape) * dtype.itemsize
    payload = len(data) - header
    if payload != expected:
        problem = "truncated" if payload < expected else "has trailing bytes"
        raise DatasetError(f"{path}: {problem}: dimensions {shape} of {dtype.name} need "
                           f"{expected} bytes of data, the file has {payload}")
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    array = array.astype(dtype.newbyteorder("="), copy=False)
    if kind is not None:
        _check_kind(array, kind, path)
    return array


def _read_bytes(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == GZIP_MAGIC:
            data = gzip.decompress(data)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read it ({exc})") from None
    return data


def _check_kind(array: np.ndarray, kind: Kind, path: str | os.PathLike) -> None:
    if kind == "images":
        if array.ndim != 3 or array.dtype != np.uint8:
            raise DatasetError(f"{path}: expected uint8 images (N, rows, cols), "
                               f"got {array.dtype.name} {array.shape}")
        return
    if array.ndim != 1 or array.dtype != np.uint8:
        raise DatasetError(f"{path}: expected uint8 labels (N,), got {array.dtype.name} {array.shape}")
    bad = np.flatnonzero(array >= NUM_CLASSES)
    if bad.size:
        raise DatasetError(f"{path}: label {array[bad[0]]} at index {bad[0]} is outside "
                           f"0..{NUM_CLASSES - 1}")

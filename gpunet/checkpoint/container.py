"""The checkpoint file: a safetensors container read only if it is one.

Byte 0 of a safetensors file is the low byte of its header's length, so a file
is called a pickle only after it fails to parse as safetensors.
"""
from __future__ import annotations

import json
import os
import reprlib
import struct
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from ..files import Unreadable, open_regular

FORMAT = "gpunet-checkpoint/1"
MAX_HEADER = 100 * 2 ** 20
MAX_CHECKPOINT = 4 * 2 ** 30  # bytes: a larger file is refused before it is read
PICKLE_STARTS = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))  # PROTO 2..5


class CheckpointError(ValueError):
    """A file that is not a usable gpunet checkpoint; the message says why."""


def read_file(path: Path) -> bytes:
    """The bytes of ``path``; CheckpointError unless it is a regular file of at most
    MAX_CHECKPOINT bytes (a FIFO, a device or a directory is never read)."""
    try:
        file = open_regular(path, "checkpoint file")
    except Unreadable as exc:
        raise CheckpointError(str(exc)) from None
    with file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_CHECKPOINT:
            raise CheckpointError(f"{path}: {size} bytes, more than a checkpoint may have "
                                  f"({MAX_CHECKPOINT})")
        return file.read(size)


def tensors(data: bytes, path: Any) -> dict[str, np.ndarray]:
    try:
        return safetensors.numpy.load(data)
    except Exception as exc:  # safetensors raises its own error types for bad layouts
        raise CheckpointError(f"{path}: damaged safetensors data ({exc})") from None


def metadata_of(data: bytes, path: Any) -> dict[str, Any]:
    """The header's metadata, after checking this is a safetensors file from gpunet
    (and saying so if it is a pickle instead)."""
    try:
        header = _header(data, path)
    except CheckpointError:
        if data.startswith(PICKLE_STARTS):
            raise CheckpointError(f"{path}: this is a pickle file; gpunet checkpoints are "
                                  "safetensors files and pickles are never loaded") from None
        raise
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: not a gpunet checkpoint (no metadata)")
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gpunet checkpoint (format "
                              f"{reprlib.repr(metadata.get('format'))})")
    return metadata


def _header(data: bytes, path: Any) -> Any:
    """The JSON header of a safetensors file: 8 bytes of its length, then the header."""
    if len(data) < 8:
        raise CheckpointError(f"{path}: too short to be a checkpoint ({len(data)} bytes)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(MAX_HEADER, len(data) - 8):
        raise CheckpointError(f"{path}: not a safetensors file (or truncated): header of "
                              f"{size} bytes in a {len(data)}-byte file")
    try:
        return json.loads(data[8:8 + size])
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path}: not a safetensors file (its header is not JSON)") from None


def numbered(tensors: dict[str, np.ndarray], prefix: str, path: Any) -> list[np.ndarray]:
    count = sum(name.startswith(prefix) for name in tensors)
    try:
        return [tensors[f"{prefix}{i}"] for i in range(count)]
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing array {exc}") from None

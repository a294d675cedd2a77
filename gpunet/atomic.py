"""Replacing a file so that readers see the old version or the new one, never a part."""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


def writable(path: str | os.PathLike) -> Path:
    """``path`` as a Path, after checking that its folder exists (ValueError if not)."""
    destination = Path(path)
    if not destination.parent.is_dir():
        raise ValueError(f"cannot write {os.fspath(path)!r}: directory "
                         f"{os.fspath(destination.parent)!r} does not exist")
    return destination


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new contents into. It lives beside
    ``path`` under a temporary name; when the block ends normally it is synced
    to disk and renamed over ``path``; on any failure (Ctrl-C too) it is
    removed and ``path`` is left as it was."""
    destination = writable(path)
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temporary, "xb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(destination.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)

"""Replacing a file so that readers see the old version or the new one, never a part."""
from __future__ import annotations

import os
import re
import secrets
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Iterator


def writable(path: str | os.PathLike) -> Path:
    """``path`` as a Path, after checking that it names a file, not a directory,
    in a folder that exists (ValueError if not)."""
    destination = Path(path)
    if not os.fspath(path):
        raise ValueError("cannot write '': no file name given")
    if destination.is_dir():
        raise ValueError(f"cannot write {os.fspath(path)!r}: it is a directory")
    if not destination.parent.is_dir():
        raise ValueError(f"cannot write {os.fspath(path)!r}: directory "
                         f"{os.fspath(destination.parent)!r} does not exist")
    return destination


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new contents into. It lives beside
    ``path`` under a temporary name; when the block ends normally it is synced
    to disk and renamed over ``path``; on any failure (Ctrl-C too) it is
    removed and ``path`` is left as it was. Temporaries that killed writers of
    ``path`` left behind are removed first. A failure to write raises OSError
    naming ``path``."""
    destination = writable(path)
    _remove_stale(destination)
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temporary, "xb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, destination)
    except BaseException as exc:
        with suppress(OSError):
            temporary.unlink()
        if _about_temporary(exc, temporary):
            raise OSError(exc.errno, exc.strerror, os.fspath(destination)) from exc
        raise
    folder = os.open(destination.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _remove_stale(destination: Path) -> None:
    """Remove the temporaries of ``destination`` (regular files named as ``replacing``
    names them) that writers killed before they could clean up left behind."""
    stale = re.compile(rf"\.{re.escape(destination.name)}\.[0-9a-f]{{16}}\.tmp")
    with suppress(OSError), os.scandir(destination.parent) as entries:
        for entry in entries:
            if stale.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with suppress(OSError):
                    os.unlink(entry.path)


def _about_temporary(exc: BaseException, temporary: Path) -> bool:
    """Whether ``exc`` is a system error about ``temporary`` or about no file (a
    failed write or sync): one to report as an error about the file it replaces."""
    return isinstance(exc, OSError) and exc.errno is not None and \
        exc.filename in (None, os.fspath(temporary))

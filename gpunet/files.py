"""Files as the commands meet them: what a path names, how to show it in one line,
and opening one to read only if it is a regular file: never a directory, a device
that reads forever (``/dev/zero``) or a FIFO that waits for a writer."""
from __future__ import annotations

import errno
import io
import os
import stat
import unicodedata
from pathlib import Path

FILE_TYPES = {stat.S_IFREG: "a file", stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO",
              stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
              stat.S_IFSOCK: "a socket"}
REASONS = {errno.ELOOP: "a symlink loop", errno.ENAMETOOLONG: "a name too long for the system"}


def cache_dir(name: str) -> Path:
    """The per-user cache of ``name``: $XDG_CACHE_HOME (default ~/.cache)/gpunet/<name>."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "gpunet" / name


class Unreadable(ValueError):
    """A path that cannot be read as a regular file; the message names it and says why."""


def file_type(mode: int) -> str:
    """What a file of st_mode ``mode`` is, in words: 'a directory', 'a FIFO'..."""
    return FILE_TYPES.get(stat.S_IFMT(mode), "a special file")


def escaped(text: str) -> str:
    """``text`` with each control character (a newline, an escape...) and each byte
    that is not UTF-8 written as Python escapes it (``\\n``, ``\\x1b``, ``\\udcff``),
    so that it prints on one line and shows what it holds; other text unchanged."""
    return "".join(repr(char)[1:-1] if unicodedata.category(char) in ("Cc", "Cs") else char
                   for char in text)


def shown(path: str | bytes | os.PathLike) -> str:
    """``path`` as text for a message: ``escaped``, so a newline in it cannot split the line."""
    return escaped(os.fsdecode(path))


def reason(exc: OSError) -> str:
    """Why the system refused a path, in words: its strerror, or for a symlink loop and a
    name too long, that."""
    return REASONS.get(exc.errno, exc.strerror or str(exc))


def open_regular(path: str | os.PathLike, what: str = "file") -> io.BufferedReader:
    """``path`` opened to read; Unreadable ("no such {what}", "a FIFO, not a
    regular file", the system's reason) unless it is a regular file that opens.
    It is checked once open, and opening does not wait for a FIFO's writer, so
    the check cannot be raced and never hangs; a file refused is closed again."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise Unreadable(f"{shown(path)}: no such {what}") from None
    except OSError as exc:
        raise Unreadable(f"{shown(path)}: cannot read it ({reason(exc)})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise Unreadable(f"{shown(path)}: {file_type(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise

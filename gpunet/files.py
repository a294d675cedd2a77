"""Opening a file to read, only if it is a regular file: never a directory, a
device that reads forever (``/dev/zero``) or a FIFO that waits for a writer."""
from __future__ import annotations

import io
import os
import stat

FILE_TYPES = {stat.S_IFREG: "a file", stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO",
              stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
              stat.S_IFSOCK: "a socket"}


class Unreadable(ValueError):
    """A path that cannot be read as a regular file; the message names it and says why."""


def file_type(mode: int) -> str:
    """What a file of st_mode ``mode`` is, in words: 'a directory', 'a FIFO'..."""
    return FILE_TYPES.get(stat.S_IFMT(mode), "a special file")


def open_regular(path: str | os.PathLike, what: str = "file") -> io.BufferedReader:
    """``path`` opened to read; Unreadable ("no such {what}", "a FIFO, not a
    regular file", the system's reason) unless it is a regular file that opens.
    It is checked once open, and opening does not wait for a FIFO's writer, so
    the check cannot be raced and never hangs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise Unreadable(f"{os.fspath(path)}: no such {what}") from None
    except OSError as exc:
        raise Unreadable(f"{os.fspath(path)}: cannot read it ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise Unreadable(f"{os.fspath(path)}: {file_type(mode)}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")

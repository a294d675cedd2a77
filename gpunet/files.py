"""Opening a file to read, only if it is a regular file: never a directory, a
device that reads forever (``/dev/zero``) or a FIFO that waits for a writer."""
from __future__ import annotations

import io
import os
import stat

FILE_TYPES = {stat.S_IFREG: "a file", stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO",
              stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
              stat.S_IFSOCK: "a socket"}


class NotRegularFile(ValueError):
    """A path that names something other than a regular file; the message says what."""


def file_type(mode: int) -> str:
    """What a file of st_mode ``mode`` is, in words: 'a directory', 'a FIFO'..."""
    return FILE_TYPES.get(stat.S_IFMT(mode), "a special file")


def open_regular(path: str | os.PathLike) -> io.BufferedReader:
    """``path`` opened to read; NotRegularFile unless it is a regular file, OSError
    if it cannot be opened. It is checked once open, and opening does not wait for
    a FIFO's writer, so the check cannot be raced and never hangs."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(f"{os.fspath(path)}: {file_type(mode)}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")

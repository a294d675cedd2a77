"""IDX files for the tests: bytes of an array, gzip, a gzip bomb, and the memory and
time a read may take."""
import gzip
import signal
import struct
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from gpunet.data.idx import TYPE_CODES


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """``array`` as the bytes of an IDX file with type code ``code``."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(TYPE_CODES[code]).tobytes()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def gzip_bomb(path: Path, head: bytes = b"", gib: int = 1) -> Path:
    """``path``: gzip-compressed ``head`` then ``gib`` GiB of zeros, in about a MB:
    one gzip member per MiB, all alike, written one at a time."""
    member = gz(bytes(1 << 20))
    with open(path, "wb") as file:
        file.write(gz(head))
        for _ in range(1024 * gib):
            file.write(member)
    return path


def peak_memory(function, *args) -> int:
    """The most bytes Python had allocated while ``function(*args)`` ran (it may raise)."""
    tracemalloc.start()
    try:
        function(*args)
    except Exception:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@contextmanager
def deadline(seconds: float):
    """TimeoutError if the block is still running after ``seconds`` (a hang fails, not stalls)."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

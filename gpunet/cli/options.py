"""Option types and option groups the commands share."""
from __future__ import annotations

import argparse
import math
import os
import stat
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

from ..atomic import writable
from ..data.datasets import data_folders
from ..data.sources import FILE_NAMES, stored_names
from ..files import escaped, file_type, reason, shown
from ..backend import BACKEND_NAMES, Backend, explain_auto, get_backend
from ..threads import AUTO, Threads


MAX_DIGITS = 4300  # of a whole number read from an option: as many as Python's int() reads
THREADS_HELP = ("threads this process computes with, or auto (default): the cores other "
                "processes leave free, looked at again after each epoch (a rank of several: "
                "its machine's cores // its ranks there); the numbers do not depend on it")


class UsageError(ValueError):
    """Options that cannot go together, found after parsing; exits 2 like argparse's errors."""


def count(minimum: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum`` (and at most ``most``), written
    as digits or as a whole number in any notation Python reads (1e3, 1_000, 1000.0)."""
    def parse(text: str) -> int:
        value = whole_number(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most:,}, got {text}")
        return value
    return parse


def whole_number(text: str) -> int:
    """``text`` read as an integer, if it is a whole number in any notation Python reads
    (``1e3`` too, exactly: Decimal, not float); ArgumentTypeError if not."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = Decimal(text)
        whole = number.is_finite() and number.adjusted() < MAX_DIGITS and \
            number == number.to_integral_value()
    except (InvalidOperation, ValueError):
        whole = False
    if not whole:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(number)


def threads_option(text: str) -> int | str:
    """An argparse type: ``auto``, or a count of at least 1."""
    return AUTO if text == AUTO else count(1)(text)


def checked_number(check: Callable[[float], float]) -> Callable[[str], float]:
    """An argparse type: a number that ``check`` accepts (it raises ValueError
    saying why not), e.g. ``optimizers.valid_momentum``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text}")
    return value


def timeout_seconds(text: str) -> float | None:
    """An argparse type: a time limit in seconds (a positive finite number), or
    0 or ``off`` for none (None)."""
    if text == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or off, got {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, or 0 or off "
                                         f"for no limit, got {text}")
    return value or None


def existing_dir(text: str) -> Path:
    """An argparse type: a directory that exists."""
    try:
        mode = os.stat(text).st_mode
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"directory {text!r} does not exist") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        problem = reason(exc) if isinstance(exc, OSError) else str(exc)
        raise argparse.ArgumentTypeError(f"directory {text!r}: {problem}") from None
    if not stat.S_ISDIR(mode):
        raise argparse.ArgumentTypeError(f"{text!r} is {file_type(mode)}, not a directory")
    return Path(text)


def writable_path(text: str) -> Path:
    """An argparse type: a path ``atomic.writable`` accepts (a file that can be replaced,
    or created, in a writable folder that exists)."""
    try:
        return writable(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def common_options() -> argparse.ArgumentParser:
    """--backend, --threads and --quiet, shared by every command that computes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", choices=BACKEND_NAMES, default=None,
                        help="array backend (default: $GPUNET_BACKEND, else auto)")
    common.add_argument("--threads", type=threads_option, default=AUTO, metavar="N|auto",
                        help=THREADS_HELP)
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    return common


def data_options() -> argparse.ArgumentParser:
    """--data-dir and --offline: where the commands that read a dataset look for it."""
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data-dir", type=existing_dir, default=None, metavar="DIR",
                      help="the folder with the dataset's IDX files, or its <dataset> subfolder, "
                           "and nowhere else (default: $GPUNET_DATA, else the cache, then "
                           "Debian's fashion-mnist, else download into the cache)")
    data.add_argument("--offline", action="store_true",
                      help="never download: fail, naming the missing files and where it looked")
    return data


def distinct_files(named: list[tuple[str, Path | None]], data_dir: Path | None = None) -> None:
    """UsageError when two of the files ``named`` ((option, path) pairs; None for
    options not given), or one of them and a file of a dataset in a folder it may be
    read from (``data_folders``: ``data_dir``, else $GPUNET_DATA, else the download
    cache and the system's copies), are one file: writing one would destroy the other."""
    given = "--data-dir" if data_dir is not None else None
    named = named + [(f"a dataset file in {given or shown(folder)}", folder / name)
                     for folder in data_folders(data_dir)
                     for gz in FILE_NAMES.values() for name in stored_names(gz)]
    seen: dict[object, str] = {}
    for option, path in named:
        if path is None:
            continue
        other = seen.setdefault(_identity(path), option)
        if other != option:
            raise UsageError(f"{other} and {option} are the same file, {shown(path)}: "
                             "one would overwrite the other")


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file (through symlinks and hard links; a symlink loop
    is no error, only itself)."""
    return _identity(first) == _identity(second)


def _identity(path: Path) -> object:
    """What tells ``path``'s file from others: its device and inode if it exists,
    else its absolute path with symlinks followed as far as they go."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return os.path.realpath(path)
    return status.st_dev, status.st_ino


def os_error(exc: OSError) -> str:
    """An OSError in one line: the path (its control characters escaped) and the reason."""
    path = f"{shown(exc.filename)}: " if exc.filename is not None else ""
    return f"{path}{escaped(exc.strerror or str(exc))}"


def open_backend(asked: str | None, threads: Threads) -> Backend:
    """The backend asked for, announced in one line with auto's reason and the
    ``threads`` the command computes with."""
    backend = get_backend(asked)
    backend.use_threads(threads.count)
    reason = f" ({explain_auto()})" if asked in (None, "auto") else ""
    print(f"backend: {backend.name}{reason}; threads: {threads}: {backend.threads_in_use()}")
    return backend

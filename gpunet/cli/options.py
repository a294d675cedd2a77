"""Option types and option groups the commands share."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Callable

from ..atomic import writable
from ..files import file_type
from ..data.sources import FILE_NAMES, SOURCES, stored_names
from ..backend import BACKEND_NAMES, Backend, explain_auto, get_backend
from ..threads import AUTO, Threads


THREADS_HELP = ("BLAS and OpenMP threads of this process, or auto (default): the cores other "
                "processes leave free, looked at again after each epoch (a rank of several: "
                "its machine's cores // its ranks there)")


class UsageError(ValueError):
    """Options that cannot go together, found after parsing; exits 2 like argparse's errors."""


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


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


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"directory {text!r} does not exist")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is {file_type(path.stat().st_mode)}, "
                                         "not a directory")
    return path


def writable_path(text: str) -> Path:
    """An argparse type: a file path whose folder exists."""
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
    """UsageError when two of the files ``named`` ((option, path) pairs; None
    for options not given), or one of them and a dataset file in ``data_dir``,
    are one file: writing one would destroy the other."""
    if data_dir is not None:  # a dataset's files are read from data_dir or data_dir/<dataset>
        named = named + [("a dataset file in --data-dir", folder / name)
                         for folder in (data_dir, *(data_dir / dataset for dataset in SOURCES))
                         for gz in FILE_NAMES.values() for name in stored_names(gz)]
    seen: dict[Path, str] = {}
    for option, path in named:
        if path is None:
            continue
        other = seen.setdefault(path.resolve(), option)
        if other != option:
            raise UsageError(f"{other} and {option} are the same file, {path}: "
                             "one would overwrite the other")


def os_error(exc: OSError) -> str:
    """An OSError in one line: the path and the system's reason."""
    path = f"{os.fsdecode(exc.filename)}: " if exc.filename is not None else ""
    return f"{path}{exc.strerror or exc}"


def open_backend(asked: str | None, threads: Threads) -> Backend:
    """The backend asked for, announced in one line with auto's reason and the
    ``threads`` the command computes with."""
    backend = get_backend(asked)
    reason = f" ({explain_auto()})" if asked in (None, "auto") else ""
    print(f"backend: {backend.name}{reason}; threads: {threads}")
    return backend

"""Option types and option groups the commands share."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..atomic import writable
from ..backend import BACKEND_NAMES, Backend, explain_auto, get_backend

EXIT_NON_FINITE, EXIT_INTERRUPTED = 3, 130


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
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"directory {text!r} does not exist")
    return path


def writable_path(text: str) -> Path:
    """An argparse type: a file path whose folder exists."""
    try:
        return writable(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def common_options() -> argparse.ArgumentParser:
    """--backend and --quiet, shared by every command that computes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", choices=BACKEND_NAMES, default=None,
                        help="array backend (default: $GPUNET_BACKEND, else auto)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    return common


def open_backend(asked: str | None) -> Backend:
    """The backend asked for, announced in one line (with auto's reason)."""
    backend = get_backend(asked)
    reason = f" ({explain_auto()})" if asked in (None, "auto") else ""
    print(f"backend: {backend.name}{reason}")
    return backend

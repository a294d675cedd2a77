"""The gpunet command line: its parser, and the exit status of each failure."""
from __future__ import annotations

import argparse
import difflib
import re
import sys
import warnings
from typing import Any, Iterable, NoReturn, Sequence

import numpy as np

from .. import __version__
from ..backend import BackendUnavailable, UnknownBackend
from ..checkpoint import CheckpointError
from ..data import DatasetError
from ..distributed.launch import LaunchError, launched_size, report
from ..train.metrics import NonFiniteLoss
from ..plots import MissingDependency
from . import bench, evaluate, experiments, info, show, train
from .options import UsageError, common_options, os_error
from .status import EXIT_ERROR, EXIT_NON_FINITE, EXIT_USAGE


DESCRIPTION = "gpunet: the notebook's experiments, MNIST training and evaluation, pictures, benchmarks."


NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.I)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (and, through ``add_subparsers``, each subcommand's) that
    refuses unknown options itself, so the error shows its own usage, and
    suggests the nearest valid option or choice. A negative number in any notation
    (``-1e-9``) is a value, not an option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's, but an unknown argument is an error here (exit 2)."""
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            options = [option for option in self._option_string_actions
                       if option.startswith("--")]
            meant = [nearest(extra.split("=")[0], options) for extra in extras
                     if extra.startswith("-")]
            meant = [option for option in meant if option]
            self.error(f"unrecognized arguments: {' '.join(extras)}"
                       + (f" (did you mean {' or '.join(meant)}?)" if meant else ""))
        return namespace, extras

    def error(self, message: str) -> NoReturn:
        """argparse's error (the usage, the message, exit 2); on a rank of several,
        a UsageError instead, said once for all ranks (``launch.report``)."""
        if launched_size() is not None:
            raise UsageError(f"{message} ({self.prog} -h lists the options)")
        super().error(message)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a choice, with the nearest one suggested (and not
        argparse's own suggestion, Python 3.14's suggest_on_error)."""
        choices = action.choices
        if choices is not None and value not in choices:
            meant = nearest(value, choices) if isinstance(value, str) and all(
                isinstance(choice, str) for choice in choices) else None
            hint = f"did you mean {meant!r}? " if meant else ""
            raise argparse.ArgumentError(action, f"invalid choice: {value!r} ({hint}choose from "
                                                 f"{', '.join(map(repr, choices))})")


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` was most likely meant to be, if any: one equal to it
    ignoring case and '_' for '-', else the closest (difflib), else for an option
    of several words (--learning-rate) the one their initials spell (--lr)."""
    by_key = {_key(candidate): candidate for candidate in candidates}
    key = _key(word)
    close = difflib.get_close_matches(key, by_key, n=1, cutoff=0.7)
    if not close and key.startswith("--") and "-" in key[2:]:
        initials = "--" + "".join(part[:1] for part in key[2:].split("-"))
        close = [initials] if initials in by_key else []
    return by_key[close[0]] if close else None


def _key(text: str) -> str:
    return text.lower().replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the gpunet command and all its subcommands (each a Parser)."""
    parser = Parser(prog="gpunet", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"gpunet {__version__}",
                        help="print gpunet's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="what to do (gpunet COMMAND -h for its options)")
    common = common_options()
    for module in (experiments, train, evaluate, show, bench, info):
        module.add_commands(commands, common)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Parse the command line ``argv``, run its command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # for a command that relaunches
        # A diverging run says so itself (NonFiniteLoss): no numerical warnings on the way,
        # neither NumPy's floating-point ones nor those raised with warnings.warn.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return args.run(args)
    except (BackendUnavailable, UnknownBackend, UsageError, LaunchError) as exc:
        return _fail(exc, EXIT_USAGE)
    except (DatasetError, CheckpointError, MissingDependency) as exc:
        return _fail(exc, EXIT_ERROR)
    except OSError as exc:
        return _fail(os_error(exc), EXIT_ERROR)
    except NonFiniteLoss as exc:
        return _fail(exc, EXIT_NON_FINITE)


def _fail(problem: object, status: int) -> int:
    return report(problem, status)

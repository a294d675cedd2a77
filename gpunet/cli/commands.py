"""The gpunet command line: its parser, and the exit status of each failure."""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

import numpy as np

from .. import __version__
from ..backend import BackendUnavailable, UnknownBackend
from ..checkpoint import CheckpointError
from ..data import DatasetError
from ..distributed.launch import LaunchError, report
from ..metrics import NonFiniteLoss
from ..plots import MissingDependency
from . import bench, evaluate, experiments, info, show, train
from .options import UsageError, common_options, os_error
from .status import EXIT_ERROR, EXIT_NON_FINITE, EXIT_USAGE


DESCRIPTION = "gpunet: the notebook's experiments, MNIST training and evaluation, pictures, benchmarks."


def build_parser() -> argparse.ArgumentParser:
    """The parser of the gpunet command and all its subcommands."""
    parser = argparse.ArgumentParser(prog="gpunet", description=DESCRIPTION)
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
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for a command that relaunches itself
    try:
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

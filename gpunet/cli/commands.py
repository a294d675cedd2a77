"""The gpunet command line: its parser, and the exit status of each failure."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np

from ..backend import BackendUnavailable, UnknownBackend
from ..checkpoint import CheckpointError
from ..data import DatasetError
from ..metrics import NonFiniteLoss
from ..plots import MissingDependency
from . import bench, experiments, info, show, train
from .options import UsageError, common_options, os_error
from .status import EXIT_ERROR, EXIT_NON_FINITE, EXIT_USAGE


DESCRIPTION = "gpunet: the notebook's experiments, MNIST training and evaluation, pictures, benchmarks."


def run(argv: Sequence[str] | None = None) -> int:
    """Parse the command line ``argv``, run its command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="gpunet", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()
    for module in (experiments, train, show, bench, info):
        module.add_commands(commands, common)
    args = parser.parse_args(argv)
    try:
        with np.errstate(all="ignore"):  # a diverging run says so itself (NonFiniteLoss)
            return args.run(args)
    except (BackendUnavailable, UnknownBackend, UsageError) as exc:
        return _fail(exc, EXIT_USAGE)
    except (DatasetError, CheckpointError, MissingDependency) as exc:
        return _fail(exc, EXIT_ERROR)
    except OSError as exc:
        return _fail(os_error(exc), EXIT_ERROR)
    except NonFiniteLoss as exc:
        return _fail(exc, EXIT_NON_FINITE)


def _fail(problem: object, status: int) -> int:
    print(f"gpunet: error: {problem}", file=sys.stderr)
    return status

"""gpunet: the notebook's experiments, MNIST training and evaluation, pictures, benchmarks.

``main`` imports the commands (and NumPy with them) only once it runs, inside
its Ctrl-C handler, so an interrupt at any moment ends in one line and exit 130.
"""
from __future__ import annotations

import sys
from typing import Sequence

from .status import EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv``; returns the exit status."""
    try:
        from .commands import run
        return run(argv)
    except KeyboardInterrupt:
        print("gpunet: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

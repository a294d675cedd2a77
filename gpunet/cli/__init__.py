"""gpunet: the notebook's experiments, MNIST training and evaluation, pictures, benchmarks.

``main`` imports the commands (and NumPy with them) only once it runs, inside
its Ctrl-C handler, so an interrupt at any moment ends in one line and exit 130;
SIGTERM and SIGHUP end it the same way (``signals``), with 143 and 129.
"""
from __future__ import annotations

from typing import Sequence

from ..distributed import launch
from .signals import ending, stopping


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv``; returns the exit status. On a rank of
    several (``gpunet train --nproc``), any failure ends all ranks."""
    with stopping():
        try:
            from .commands import run
            status = run(argv)
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP
            status = launch.report(*ending(exc))
        except launch.RanksStopped as stopped:  # another rank failed, or settings differ: said
            status = stopped.status
        except BaseException:
            if not launch.several():
                raise
            status = launch.crashed()  # a bug must not leave the other ranks waiting
        return launch.finish(status)

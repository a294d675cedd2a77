"""What the tests share: run the command, launch ranks, make fake data and
checkpoints, reference random numbers, kernel sources, gradient checks. Test modules
import from here (``from helpers.cli import gpunet_cli``), never from each other;
``pythonpath = ["tests"]`` in pyproject.toml puts this package on the path."""

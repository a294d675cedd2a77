"""Take each ``__syncthreads();`` out of the block kernels' text, one at a time, and run
the host's kernel tests in each of its orders: a barrier whose removal no test catches
is either not needed or not tested.

    python3 scripts/barrier_mutants.py [pytest options, e.g. -n 2]

Each mutant runs ``TESTS`` with ``-x`` in order and last first (conftest.py's
``host_order``, chosen with ``-k``), so a caught one stops at its first failure.
Prints a line a barrier and order; exits 1 if any removal went uncaught in both.
The sources are restored after each mutant, and if it is interrupted. About 6
minutes with -n 2 on this project's 2-core machines.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "gpunet" / "backend" / "block_kernels").glob("*.py"))
TESTS = ["tests/backend/test_block_kernels_on_host.py", "tests/backend/test_kernels_on_host.py",
         "tests/backend/test_cupy_planned_step_on_host.py",
         "tests/backend/test_cupy_graph_step_on_host.py"]
BARRIER = "__syncthreads();"
ORDERS = {"in order": "host-order", "last first": "host-reversed"}  # name: host_order's id


def caught(order: str, options: list[str]) -> bool:
    """Whether a test of ``TESTS`` fails with the host running in ``order``."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           "-k", ORDERS[order], *options, *TESTS], cwd=ROOT,
                          capture_output=True, text=True)
    return done.returncode != 0


def main(options: list[str]) -> int:
    uncaught = 0
    for source in SOURCES:
        text = source.read_text()
        for found in re.finditer(re.escape(BARRIER), text):
            line = text.count("\n", 0, found.start()) + 1
            source.write_text(text[:found.start()] + text[found.end():])
            try:
                orders = [order for order in ORDERS if caught(order, options)]
            finally:
                source.write_text(text)
            uncaught += not orders
            print(f"{source.relative_to(ROOT)}:{line}: "
                  f"{'caught ' + ' and '.join(orders) if orders else 'NOT CAUGHT'}", flush=True)
    return 1 if uncaught else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

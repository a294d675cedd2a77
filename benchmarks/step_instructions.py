"""Instructions per training step, which a shared machine's load does not move.

    python -m benchmarks.step_instructions [--batch-sizes 1 128]

Counts, under ``valgrind --tool=callgrind`` with one BLAS thread, the
instructions of the notebook's deep model trained by the plain NumPy script
(``plain_numpy``), by gpunet's planned step (``graph="off"``), by its host
replay (``train_epoch``'s default), by gpunet's eager layers and by a user's loop of gpunet's public calls (``bench_core.public_epoch``), as
the difference between two epochs of different lengths divided by the steps
between them, so that start-up, the data's generation and the warm-up cancel
out. Prints millions of instructions per step and each as a ratio of the plain
script's. Needs valgrind; each run takes a minute or two.
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

STEPS = {1: (200, 800), 128: (10, 40)}  # (short, long) epochs in steps, per batch size
WAYS = ("plain", "planned", "replayed", "eager", "public")


def train(way: str, steps: int, batch_size: int) -> None:
    """One warm-up step, then an epoch of ``steps`` steps, the ``way`` asked for."""
    import gpunet
    from gpunet.train import step as train_step

    from . import plain_numpy
    from .bench_core import data, public_epoch

    x, y = data(STEPS[batch_size][1] * batch_size)  # one size for both epochs: it cancels
    x, y = x[:steps * batch_size], y[:steps * batch_size]
    if way == "plain":
        rng = np.random.default_rng(0)
        params = plain_numpy.init(rng)
        updates = [np.zeros_like(p) for p in params]
        for inputs, targets in ((x[:batch_size], y[:batch_size]), (x, y)):
            plain_numpy.epoch(params, updates, inputs, targets, batch_size, rng)
        return
    if way == "eager":
        train_step.plan_step = lambda *args: None
    backend = gpunet.get_backend("numpy")
    gpunet.seed(0)
    model = gpunet.mnist_model("deep", backend=backend)
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
    epoch = (public_epoch if way == "public" else
             functools.partial(gpunet.train_epoch, graph="auto" if way == "replayed" else "off"))
    for inputs, targets in ((x[:batch_size], y[:batch_size]), (x, y)):
        epoch(model, loss, optimizer, inputs, targets, batch_size)


def instructions(way: str, steps: int, batch_size: int) -> int:
    """Instructions callgrind counts for ``train(way, steps, batch_size)`` in a new process."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out",
             sys.executable, "-m", "benchmarks.step_instructions", "--run", way, str(steps),
             str(batch_size)],
            capture_output=True, text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind failed for {way}: {done.stderr.strip()[-500:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 128], choices=STEPS,
                        help="batch sizes to count at (default 1 128)")
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS,
                        help="ways to count, plain always among them (default: all)")
    parser.add_argument("--run", nargs=3, metavar=("WAY", "STEPS", "BATCH"),
                        help=argparse.SUPPRESS)  # one counted process
    args = parser.parse_args()
    if args.run:
        way, steps, batch_size = args.run
        train(way, int(steps), int(batch_size))
        return
    ways = ["plain", *(way for way in args.ways if way != "plain")]
    print(f"{'batch':>6} " + " ".join(f"{way:>16}" for way in ways))
    for batch_size in args.batch_sizes:
        short, long = STEPS[batch_size]
        per_step = {way: (instructions(way, long, batch_size)
                          - instructions(way, short, batch_size)) / (long - short)
                    for way in ways}
        print(f"{batch_size:>6} " + " ".join(
            f"{per_step[way] / 1e6:8.3f}M {per_step[way] / per_step['plain']:5.2f}x"
            for way in ways))


if __name__ == "__main__":
    main()

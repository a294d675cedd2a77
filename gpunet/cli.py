"""The ``gpunet`` command: ``gpunet xor`` and ``gpunet fizzbuzz``."""
from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np

from .backend import BACKEND_NAMES, Backend, BackendUnavailable, explain_auto, get_backend
from .experiments import fizzbuzz, xor


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        backend = get_backend(args.backend)
    except BackendUnavailable as exc:
        parser.exit(2, f"gpunet: error: {exc}\n")
    print(_describe(backend, args.backend))
    args.run(args, backend)
    return 0


def _run_xor(args: argparse.Namespace, backend: Backend) -> None:
    result = xor.run_xor(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                         backend=backend, progress=not args.quiet)
    print(f"final epoch loss: {result.losses[-1]:.4f}" if result.losses else "no epochs run")
    for (a, b), target, out in zip(xor.INPUTS, xor.TARGETS, result.predictions):
        print(f"  xor({a:.0f}, {b:.0f}) = {out:+.3f}  (target {target[0]:.0f})")
    print("solved" if result.solved else "not solved: some outputs round to the wrong value")
    for i, param in enumerate(result.model.params()):
        print(f"param {i}: {np.round(backend.to_numpy(param), 3).tolist()}")


def _run_fizzbuzz(args: argparse.Namespace, backend: Backend) -> None:
    result = fizzbuzz.run_fizzbuzz(loss=args.loss, epochs=args.epochs,
                                   batch_size=args.batch_size, seed=args.seed,
                                   backend=backend, progress=not args.quiet)
    if result.losses:
        print(f"final epoch loss: {result.losses[-1]:.3f}  "
              f"train accuracy (101..1023): {result.train_accuracies[-1]:.3f}")
    print(f"test accuracy (1..100): {result.test_accuracy:.2f}")


def _describe(backend: Backend, asked: str | None) -> str:
    if backend.name == "numpy" and asked in (None, "auto"):
        return f"backend: numpy ({explain_auto()})"
    return f"backend: {backend.name}"


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", choices=BACKEND_NAMES, default=None,
                        help="array backend (default: $GPUNET_BACKEND, else auto)")
    common.add_argument("--seed", type=_count(0), default=0, help="random seed (default 0)")
    common.add_argument("--batch-size", type=_count(1), default=1,
                        help="samples per step (default 1, as in the notebook)")
    common.add_argument("--quiet", action="store_true", help="no progress bar")

    parser = argparse.ArgumentParser(prog="gpunet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cmd = commands.add_parser("xor", parents=[common], help="train the notebook's XOR network")
    cmd.add_argument("--epochs", type=_count(0), default=3000, help="epochs (default 3000)")
    cmd.set_defaults(run=_run_xor)

    cmd = commands.add_parser("fizzbuzz", parents=[common], help="train the FizzBuzz network")
    cmd.add_argument("--loss", choices=list(fizzbuzz.LOSSES), default="softmax-ce",
                     help="softmax-ce (default; 100 epochs) or sse with a final sigmoid "
                          "(1000 epochs), both as in the notebook")
    cmd.add_argument("--epochs", type=_count(0), default=None,
                     help="epochs (default: 100 for softmax-ce, 1000 for sse)")
    cmd.set_defaults(run=_run_fizzbuzz)
    return parser


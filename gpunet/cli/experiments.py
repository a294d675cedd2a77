"""``gpunet xor`` and ``gpunet fizzbuzz``: the notebook's first two experiments."""
from __future__ import annotations

import argparse

import numpy as np

from ..experiments import fizzbuzz, xor
from ..threads import chosen_threads
from .options import count, open_backend


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    shared = argparse.ArgumentParser(add_help=False, parents=[common])
    shared.add_argument("--seed", type=count(0), default=0, help="random seed (default 0)")
    shared.add_argument("--batch-size", type=count(1), default=1,
                        help="samples per step (default 1, as in the notebook)")

    cmd = commands.add_parser("xor", parents=[shared], help="train the notebook's XOR network")
    cmd.add_argument("--epochs", type=count(0), default=3000, help="epochs (default 3000)")
    cmd.set_defaults(run=run_xor)

    cmd = commands.add_parser("fizzbuzz", parents=[shared], help="train the FizzBuzz network")
    cmd.add_argument("--loss", choices=list(fizzbuzz.LOSSES), default="softmax-ce",
                     help="softmax-ce (default; 100 epochs) or sse with a final sigmoid "
                          "(1000 epochs), both as in the notebook")
    cmd.add_argument("--epochs", type=count(0), default=None,
                     help="epochs (default: 100 for softmax-ce, 1000 for sse)")
    cmd.set_defaults(run=run_fizzbuzz)


def run_xor(args: argparse.Namespace) -> int:
    backend = open_backend(args.backend, chosen_threads(args.threads))
    result = xor.run_xor(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                         backend=backend, progress=not args.quiet)
    print(f"final epoch loss: {result.losses[-1]:.4f}" if result.losses else "no epochs run")
    for (a, b), target, out in zip(xor.INPUTS, xor.TARGETS, result.predictions):
        print(f"  xor({a:.0f}, {b:.0f}) = {out:+.3f}  (target {target[0]:.0f})")
    print("solved" if result.solved else "not solved: some outputs round to the wrong value")
    for i, param in enumerate(result.model.params()):
        # rounded in float64: float32's 0.1 would print as 0.10000000149011612
        print(f"param {i}: {np.round(backend.to_numpy(param).astype(np.float64), 3).tolist()}")
    return 0


def run_fizzbuzz(args: argparse.Namespace) -> int:
    backend = open_backend(args.backend, chosen_threads(args.threads))
    result = fizzbuzz.run_fizzbuzz(loss=args.loss, epochs=args.epochs,
                                   batch_size=args.batch_size, seed=args.seed,
                                   backend=backend, progress=not args.quiet)
    if result.losses:
        print(f"final epoch loss: {result.losses[-1]:.3f}  "
              f"train accuracy (101..1023): {result.train_accuracies[-1]:.3f}")
    print(f"test accuracy (1..100): {result.test_accuracy:.2f}")
    return 0

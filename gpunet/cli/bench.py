"""``gpunet bench``: compare backends and peers; writes JSON, Markdown and PNG results."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import UsageError, count, positive_float


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from benchmarks.harness import PEERS, Config
    from benchmarks.ops import OPS
    from benchmarks.trainers import MODELS
    defaults = Config()
    cmd = commands.add_parser("bench", help="benchmark backends, kernels and peers")
    cmd.add_argument("--backends", nargs="+", choices=["numpy", "cupy"], default=None,
                     help="backends to measure (default: numpy and cupy, where usable)")
    cmd.add_argument("--models", nargs="+", choices=MODELS, default=None)
    cmd.add_argument("--batch-sizes", nargs="+", type=count(1), default=None,
                     help=f"default {' '.join(map(str, defaults.batch_sizes))}")
    cmd.add_argument("--ops", nargs="+", choices=OPS, default=None)
    cmd.add_argument("--op-sizes", nargs="+", type=count(1), default=None,
                     help="elements per operation (default 1e3 .. 1e8)")
    cmd.add_argument("--peers", nargs="*", choices=PEERS, default=None,
                     help="peers to compare with, where installed (default: all; none: --peers)")
    cmd.add_argument("--repeats", type=count(1), default=None, help=f"default {defaults.repeats}")
    cmd.add_argument("--budget", type=positive_float, default=None, metavar="SECONDS",
                     help=f"time per measurement after its first repeat (default {defaults.budget_s})")
    cmd.add_argument("--epoch-samples", type=count(1), default=None,
                     help=f"samples in a timed epoch (default {defaults.epoch_samples})")
    cmd.add_argument("--quick", action="store_true",
                     help="a small configuration: about a minute on a CPU")
    cmd.add_argument("--out", type=Path, default=Path("bench-out"),
                     help="folder for results.json, results.md and the PNGs (default bench-out)")
    cmd.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from benchmarks.harness import Config, run, write_outputs
    config = Config.quick() if args.quick else Config()
    for option, field in [("backends", "backends"), ("models", "models"),
                          ("batch_sizes", "batch_sizes"), ("ops", "ops"), ("op_sizes", "op_sizes"),
                          ("peers", "peers"), ("repeats", "repeats"), ("budget", "budget_s"),
                          ("epoch_samples", "epoch_samples")]:
        if getattr(args, option) is not None:
            setattr(config, field, getattr(args, option))
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    measured = run(config)
    for path in write_outputs(measured, args.out):
        print(f"wrote {path}")
    return 0

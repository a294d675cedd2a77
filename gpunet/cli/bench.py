"""``gpunet bench``: compare backends and peers; writes JSON, Markdown and PNG results."""
from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

from threadpoolctl import threadpool_limits

from ..atomic import writable
from ..files import reason, shown
from ..backend.host_threads import threads_in_use
from ..threads import AUTO, chosen_threads
from .options import UsageError, count, positive_float, threads_option

MAX_OP_SIZE = 10 ** 9   # elements per operation: 4 GB a float32 operand, 10x the default's most
MAX_SAMPLES = 10 ** 6   # in a batch or a timed epoch: 3 GB of MNIST-sized float32 images


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from ..bench.harness import PEERS, Config
    from ..bench.ops import OPS
    from ..models import PRESETS
    defaults, quick = Config(), Config.quick()
    cmd = commands.add_parser("bench", help="benchmark backends, kernels and peers")
    cmd.add_argument("--backends", nargs="+", choices=["numpy", "cupy"], default=None,
                     help="backends to measure (default: numpy and cupy, where usable)")
    cmd.add_argument("--models", nargs="+", choices=PRESETS, default=None,
                     help="models whose training step and epoch are timed (default: "
                          f"{' '.join(defaults.models)}; --quick: {' '.join(quick.models)})")
    cmd.add_argument("--batch-sizes", nargs="+", type=count(1, MAX_SAMPLES), default=None, metavar="N",
                     help=f"batch sizes to train at, at most {_power(MAX_SAMPLES)} "
                          f"(default: {_listed(defaults.batch_sizes)}; "
                          f"--quick: {_listed(quick.batch_sizes)})")
    cmd.add_argument("--ops", nargs="+", choices=OPS, default=None, metavar="OP",
                     help="backend operations to time against the array expressions they "
                          f"replace: {', '.join(OPS)} (default: all)")
    cmd.add_argument("--op-sizes", nargs="+", type=count(1, MAX_OP_SIZE), default=None, metavar="N",
                     help=f"elements per operation, at most {_power(MAX_OP_SIZE)} (default: 1e3 .. 1e8; "
                          "--quick: 1e3 1e5)")
    cmd.add_argument("--peers", nargs="*", choices=PEERS, default=None,
                     help="peers to compare with, where installed (default: all; none: --peers)")
    cmd.add_argument("--repeats", type=count(1), default=None, metavar="N",
                     help="timed readings per measurement at most, epochs half as many but at "
                          "least 3; --budget may stop them after 3 "
                          f"(default: {defaults.repeats}; --quick: {quick.repeats})")
    cmd.add_argument("--budget", type=positive_float, default=None, metavar="SECONDS",
                     help="seconds of readings per measurement, after its warm-up; once they "
                          "are spent, no reading starts past the third "
                          f"(default: {defaults.budget_s}; --quick: {quick.budget_s})")
    cmd.add_argument("--epoch-samples", type=count(1, MAX_SAMPLES), default=None, metavar="N",
                     help=f"samples in a timed epoch, at most {_power(MAX_SAMPLES)} "
                          f"(default: {defaults.epoch_samples}; "
                          f"--quick: {quick.epoch_samples})")
    cmd.add_argument("--nproc", type=count(2), default=None, metavar="N",
                     help="also time an epoch of the deep model (NumPy, batch 128) in one process "
                          "and on N MPI ranks (mpiexec, mpi4py), and the allreduce of the deep "
                          "and wide models' gradients on them (default: not measured)")
    cmd.add_argument("--threads", type=threads_option, default=AUTO, metavar="N|auto",
                     help="BLAS and OpenMP threads of every peer, gpunet's included, or auto "
                          "(default): the cores other processes leave free when it starts; "
                          "PyTorch's own threads are not limited")
    cmd.add_argument("--quick", action="store_true",
                     help="a small configuration, about a minute on a CPU; "
                          "the options above override its settings")
    cmd.add_argument("--out", type=Path, default=Path("bench-out"), metavar="FOLDER",
                     help="folder for results.json, results.md and the PNGs; an earlier run's "
                          "PNG there that the new results do not back is removed "
                          "(default: bench-out)")
    cmd.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from ..bench.harness import Config, run
    from ..bench.outputs import FILES, write_outputs
    from ..bench.scaling import BATCH_SIZE
    config = Config.quick() if args.quick else Config()
    for option, field in [("backends", "backends"), ("models", "models"),
                          ("batch_sizes", "batch_sizes"), ("ops", "ops"), ("op_sizes", "op_sizes"),
                          ("peers", "peers"), ("repeats", "repeats"), ("budget", "budget_s"),
                          ("epoch_samples", "epoch_samples"), ("nproc", "nproc")]:
        if getattr(args, option) is not None:
            setattr(config, field, getattr(args, option))
    most = min(BATCH_SIZE, config.epoch_samples)
    if config.nproc is not None and config.nproc > most:
        raise UsageError(f"--nproc {config.nproc}: at most {most} ranks, as each takes a share "
                         f"of every batch of {BATCH_SIZE} and of the {config.epoch_samples:,} "
                         "samples of an epoch (--epoch-samples)")
    _check_out(args.out, FILES)
    threads = chosen_threads(args.threads)
    threadpool_limits(threads.count)  # every peer's BLAS alike (gpunet's row blocks in turn)
    print(f"threads: {threads}: {threads_in_use()}")
    try:
        measured = run(config)
    except MemoryError:
        raise UsageError("out of memory: the sizes asked for (--op-sizes, --batch-sizes, "
                         "--epoch-samples) do not fit on this machine") from None
    if not measured["results"]:
        raise UsageError(f"nothing measured ({'; '.join(measured['skipped'])}), "
                         f"so nothing written to {args.out}")
    for path in write_outputs(measured, args.out):
        print(f"wrote {path}")
    return 0


def _check_out(out: Path, names: tuple[str, ...]) -> None:
    """UsageError unless ``out`` is a folder, or nothing yet, where each of ``names``
    can be written (``atomic.writable``)."""
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return  # created with the results
    except (OSError, ValueError) as exc:
        raise UsageError(f"--out {shown(out)}: {reason(exc) if isinstance(exc, OSError) else exc}"
                         ) from None
    if not stat.S_ISDIR(mode):
        raise UsageError(f"--out {shown(out)} exists and is not a folder")
    for name in names:
        if (out / name).is_dir():
            raise UsageError(f"--out {shown(out)}: {shown(out / name)} is a folder, "
                             "where the results would go")
        try:
            writable(out / name)
        except ValueError as exc:
            raise UsageError(f"--out {shown(out)}: {exc}") from None


def _power(value: int) -> str:
    """A power of ten as 1e<exponent>, as the help writes sizes."""
    return f"1e{len(str(value)) - 1}"


def _listed(values: list[int]) -> str:
    return " ".join(map(str, values))

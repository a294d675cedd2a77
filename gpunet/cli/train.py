"""``gpunet train``: MNIST-format training, checkpoints, metrics."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import seeding
from ..atomic import replacing
from ..backend import Backend
from ..checkpoint import Checkpoint, CheckpointError, save_checkpoint
from ..data.idx import MAX_EXAMPLES
from ..data.preprocess import Prepared, prepare
from ..data.sources import SOURCES, SPLITS
from ..distributed.comm import Communicator
from ..distributed.deadline import DEFAULT_TIMEOUT_S, CollectiveTimeout
from ..distributed.device import select_device
from ..distributed.launch import MPI_EXTRA, agree, join, launch, launched_size, report
from ..distributed.shares import check_shares
from ..train.fit import EpochStats, evaluate, fit
from ..train.metrics import NonFiniteLoss
from ..losses import SoftmaxCrossEntropy
from ..models import PRESETS, default_rates, mnist_model
from ..optimizers import (GradientDescent, Momentum, Optimizer, valid_learning_rate,
                          valid_momentum)
from ..planning.graph import MODES
from ..threads import chosen_threads
from .data import DEFAULT_DATASET, check_fits, load_data
from .options import (UsageError, checked_number, count, data_options, distinct_files,
                      open_backend, os_error, same_file, timeout_seconds, writable_path)
from .run_settings import OPTIMIZERS, load_run
from .signals import ending
from .status import EXIT_ERROR, EXIT_NON_FINITE

DEFAULTS = {"dataset": DEFAULT_DATASET, "model": "deep", "epochs": 5, "batch_size": 128,
            "seed": 0, "optimizer": "momentum"}
OPTIONS = {"learning_rate": "--lr"}  # config keys whose option is not --key-with-dashes


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cmd = commands.add_parser("train", parents=[common, data_options()],
                              help="train an MNIST model")
    cmd.add_argument("--dataset", choices=list(SOURCES), default=None,
                     help=f"{' or '.join(SOURCES)} (default {DEFAULT_DATASET}, or the --resume "
                          "checkpoint's)")
    cmd.add_argument("--test-subset", type=count(1), default=None, metavar="N",
                     help="test on the first N test samples only")
    cmd.add_argument("--model", choices=PRESETS, default=None,
                     help="logistic or deep (the notebook's), or wide (default deep)")
    cmd.add_argument("--epochs", type=count(0), default=None,
                     help="total epochs to have trained (default 5)")
    cmd.add_argument("--batch-size", type=count(1), default=None,
                     help="samples per step (default 128; 1 reproduces the notebook)")
    cmd.add_argument("--lr", type=checked_number(valid_learning_rate), default=None,
                     help="learning rate (default: 0.01 at batch size 1 as in the notebook, "
                          "else logistic 0.1, deep 0.5, wide 0.1)")
    cmd.add_argument("--momentum", type=checked_number(valid_momentum), default=None,
                     help="momentum in [0, 1) (default 0.99 at batch size 1, else 0.9)")
    cmd.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                     help="momentum (default, the notebook's) or sgd")
    cmd.add_argument("--seed", type=count(0), default=None, help="random seed (default 0)")
    cmd.add_argument("--train-subset", type=count(1), default=None, metavar="N",
                     help="train on the first N training samples only")
    cmd.add_argument("--save", type=writable_path, default=None, metavar="CKPT",
                     help="write a checkpoint after every epoch (atomically)")
    cmd.add_argument("--resume", type=Path, default=None, metavar="CKPT",
                     help="continue the run saved in CKPT up to --epochs "
                          "(with --save to keep what it trains)")
    cmd.add_argument("--metrics", type=writable_path, default=None, metavar="FILE.json",
                     help="write the history and final test accuracy as JSON")
    cmd.add_argument("--nproc", type=count(1), default=None, metavar="N",
                     help="train on N processes of this machine, each taking a share of every "
                          f"batch (needs {MPI_EXTRA}); under mpiexec or srun, the launch's "
                          "processes join without it (if given, N must be their number)")
    cmd.add_argument("--collective-timeout", type=timeout_seconds, default=DEFAULT_TIMEOUT_S,
                     metavar="SECONDS",
                     help="with several ranks: end the run (exit 1), naming the ranks that did "
                          "not answer, when one of training's collectives has waited this long "
                          "for the others (a rank stopped or cut off); 0 or off: wait for ever "
                          f"(default {DEFAULT_TIMEOUT_S:g})")
    cmd.add_argument("--graph", choices=MODES, default="auto",
                     help="replay each full batch's planned step as a CUDA graph (on numpy: "
                          "its CPU stand-in); auto: as `gpunet info` says (default auto)")
    cmd.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    _check_paths(args)
    if args.nproc is not None and args.nproc > 1 and launched_size() is None:
        _check_nproc(args.nproc, args.train_subset or MAX_EXAMPLES,
                     args.batch_size or DEFAULTS["batch_size"])  # before starting any rank
        return launch(args.nproc, args.argv, lambda: _kept(args.save))
    comm = join(args.nproc)
    if comm.size > 1 and args.graph == "on":
        raise UsageError(f"--graph on replays one process's step; with {comm.size} ranks use "
                         "--graph auto or off")
    threads = chosen_threads(args.threads, comm)
    backend = open_backend(args.backend, threads)
    select_device(backend, comm.local_rank)
    resumed = load_run(args.resume, backend) if args.resume else None
    config = _config(args, resumed)
    done = resumed.epoch if resumed else 0
    trains = done < config["epochs"]
    if resumed and trains and not args.save:
        print(f"gpunet: warning: --resume without --save: the epochs trained now will not be "
              f"saved (add --save {args.resume} to keep them)", file=sys.stderr)
    agree(_settings(config, args, backend, done))  # ranks started differently end here
    data = _data(config, args, backend, comm)
    comm.timeout = args.collective_timeout  # the start, rank 0's download included, had none
    config["mean_pixel"] = data.mean_pixel
    if resumed is None:
        seeding.seed(config["seed"])
        model = mnist_model(config["model"], backend=backend)
        optimizer, history = _optimizer(config), []
    else:
        check_fits(resumed.model, data.test_x, data.test_y, args.resume, config["dataset"])
        model, optimizer, history = resumed.model, resumed.optimizer, resumed.history
        seeding.seed(config["seed"])
        print(f"resuming {args.resume} after epoch {done}" if trains else
              f"nothing to train: {args.resume} is at epoch {done}; "
              f"pass --epochs above {done} to train on")
    loss = SoftmaxCrossEntropy()
    if trains:
        print(f"training {config['model']} on {config['dataset']}: {len(data.train_x)} samples, "
              f"batch size {config['batch_size']}, {config['optimizer']} lr "
              f"{config['learning_rate']}"
              + (f" momentum {config['momentum']}" if config["optimizer"] == "momentum" else ""))

    def end_of_epoch(stats: EpochStats) -> None:
        history.append(asdict(stats))
        print(f"epoch {stats.epoch}: loss {stats.loss:.4f}, accuracy {stats.accuracy:.4f}, "
              f"test accuracy {stats.test_accuracy:.4f}, {stats.samples_per_second:,.0f} samples/s, "
              f"step {stats.step_path}")
        if threads.update():
            backend.use_threads(threads.count)
            print(f"threads: {threads}: {backend.threads_in_use()}, as the other processes' "
                  "use of the cores changed")
        if args.save and comm.rank == 0:
            save_checkpoint(args.save, model, optimizer, epoch=stats.epoch, seed=config["seed"],
                            config=config, history=history)
        if args.metrics and comm.rank == 0:
            _write_metrics(args.metrics, config, history, stats.test_accuracy)

    try:
        fit(model, loss, optimizer, data.train_x, data.train_y, epochs=config["epochs"],
            batch_size=config["batch_size"], first_epoch=done, test=(data.test_x, data.test_y),
            progress=not args.quiet, on_epoch_end=end_of_epoch, graph=args.graph, comm=comm)
        _, accuracy = evaluate(model, loss, data.test_x, data.test_y, comm=comm)
    except CollectiveTimeout as exc:  # every rank waiting may meet it: rank 0 says it first
        return report(f"{exc} (--collective-timeout); {_kept(args.save)}", EXIT_ERROR,
                      shared=True)
    except (NonFiniteLoss, KeyboardInterrupt, OSError) as exc:  # OSError: a failed write
        problem, status = (ending(exc) if isinstance(exc, KeyboardInterrupt) else
                           (os_error(exc), EXIT_ERROR) if isinstance(exc, OSError) else
                           (str(exc), EXIT_NON_FINITE))
        return report(f"{problem}; {_kept(args.save)}", status)
    print(f"test accuracy: {accuracy:.4f}")
    if args.metrics and comm.rank == 0:
        _write_metrics(args.metrics, config, history, accuracy)
    return 0


def _kept(save: Path | None) -> str:
    """What a run that failed leaves: its last good checkpoint, or none."""
    return f"the last good checkpoint is {save}" if save and save.exists() else \
        "no checkpoint was written"


def _config(args: argparse.Namespace, resumed: Checkpoint | None) -> dict[str, Any]:
    """The run's settings: the options given, else the checkpoint's, else the defaults."""
    keys = ["dataset", "model", "epochs", "batch_size", "seed", "optimizer", "train_subset",
            "test_subset"]
    given = {key: getattr(args, key) for key in keys if getattr(args, key) is not None}
    given.update({k: v for k, v in [("learning_rate", args.lr), ("momentum", args.momentum)]
                  if v is not None})
    saved = resumed.config if resumed else {}
    differ = [f"{OPTIONS.get(key, '--' + key.replace('_', '-'))} {value} differs from the "
              f"checkpoint's {saved[key]}" for key, value in given.items()
              if key in saved and key != "epochs" and saved[key] != value]
    if differ:
        raise CheckpointError(f"{args.resume}: {'; '.join(differ)}: drop "
                              f"{'this option' if len(differ) == 1 else 'these options'} to "
                              "resume as saved, or start a new run without --resume")
    config = {**DEFAULTS, "train_subset": None, "test_subset": None, **saved, **given}
    rate, momentum = default_rates(config["model"], config["batch_size"])
    config.setdefault("learning_rate", rate)
    config.setdefault("momentum", momentum)
    return config


def _check_paths(args: argparse.Namespace) -> None:
    """UsageError if one file is named twice, except --resume and --save naming
    one: the usual way to go on with a run, saving as it goes."""
    resume = args.resume
    if resume and args.save and same_file(resume, args.save):
        resume = None
    distinct_files([("--save", args.save), ("--resume", resume), ("--metrics", args.metrics)],
                   args.data_dir)


def _check_nproc(ranks: int, samples: int, batch_size: int) -> None:
    """UsageError unless each of ``ranks`` has rows of the data and of every batch."""
    try:
        check_shares(samples, batch_size, ranks)
    except ValueError as exc:
        raise UsageError(f"--nproc {ranks}: {exc}") from None


def _optimizer(config: dict[str, Any]) -> Optimizer:
    if config["optimizer"] == "sgd":
        return GradientDescent(config["learning_rate"])
    return Momentum(config["learning_rate"], config["momentum"])


def _settings(config: dict[str, Any], args: argparse.Namespace, backend: Backend,
              done: int) -> dict[str, Any]:
    """What every rank must run with, each named as the user gives it."""
    settings = {OPTIONS.get(key, "--" + key.replace("_", "-")): value
                for key, value in config.items()}
    return {**settings, "--backend": backend.name, "--graph": args.graph,
            "the --resume checkpoint's epoch": done}


def _data(config: dict[str, Any], args: argparse.Namespace, backend: Backend,
          comm: Communicator) -> Prepared:
    """The prepared dataset; with several ranks, rank 0 reads (or downloads) it
    first and the others after, then they agree on its shapes (``launch.agree``),
    and each rank needs a share of the data and of every batch."""
    def load() -> Any:
        return load_data(config["dataset"], SPLITS, data_dir=args.data_dir, offline=args.offline,
                         progress=not args.quiet, rerun="train")

    raw = load() if comm.rank == 0 else None
    agree({})  # the others wait for rank 0's files (if a rank failed, all end)
    raw = load() if raw is None else raw
    train, test = config.get("train_subset"), config.get("test_subset")
    parts = {"the training images": raw.train_images[:train],
             "the training labels": raw.train_labels[:train],
             "the test images": raw.test_images[:test], "the test labels": raw.test_labels[:test]}
    data = prepare(*parts.values(), backend)
    _check_nproc(comm.size, len(data.train_x), config["batch_size"])
    agree({f"{name} of shape": "x".join(map(str, array.shape)) for name, array in parts.items()},
          final=True)  # the files' bytes are the published ones: checked as they load
    return data


def _write_metrics(path: Path, config: dict[str, Any], history: list[dict[str, Any]],
                   test_accuracy: float) -> None:
    """The config, the per-epoch history and the latest test accuracy, replaced atomically."""
    metrics = {**config, "history": history, "test_accuracy": test_accuracy}
    with replacing(path) as file:
        file.write(json.dumps(metrics, indent=2).encode())

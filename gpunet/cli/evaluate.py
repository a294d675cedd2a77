"""``gpunet eval``: the test accuracy of a checkpoint."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..backend import Array, Backend
from ..checkpoint import Checkpoint, CheckpointError
from ..data.preprocess import mean_pixel, model_ready
from ..data.sources import SOURCES
from ..train.fit import evaluate
from ..losses import SoftmaxCrossEntropy
from ..threads import chosen_threads
from .data import check_fits, load_data
from .options import count, data_options, open_backend
from .run_settings import load_run


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cmd = commands.add_parser("eval", parents=[common, data_options()],
                              help="test accuracy of a checkpoint")
    cmd.add_argument("checkpoint", type=Path, metavar="CKPT",
                     help="a checkpoint written by gpunet train --save")
    cmd.add_argument("--dataset", choices=list(SOURCES), default=None,
                     help="the test set to use (default: the checkpoint's dataset)")
    cmd.add_argument("--test-subset", type=count(1), default=None, metavar="N",
                     help="evaluate on the first N test samples only")
    cmd.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    backend = open_backend(args.backend, chosen_threads(args.threads))
    checkpoint = load_run(args.checkpoint, backend)
    dataset = eval_dataset(args.checkpoint, checkpoint.config.get("dataset"), args.dataset)
    inputs, targets = test_set(checkpoint, dataset, args, backend)
    check_fits(checkpoint.model, inputs, targets, args.checkpoint, dataset)
    loss_value, accuracy = evaluate(checkpoint.model, SoftmaxCrossEntropy(), inputs, targets)
    print(f"{args.checkpoint}: epoch {checkpoint.epoch}, {dataset} test accuracy "
          f"{accuracy:.4f} (loss {loss_value:.4f}, {len(inputs)} samples)")
    return 0


def eval_dataset(path: Path, trained_on: str | None, asked: str | None) -> str:
    """The dataset to evaluate on: ``asked`` (--dataset), else the one the checkpoint
    was ``trained_on``; CheckpointError if neither is known, and a warning when they
    differ."""
    if asked is None and trained_on is None:
        raise CheckpointError(f"{path}: the checkpoint records no dataset; name the test set "
                              f"with --dataset {'|'.join(SOURCES)}")
    if asked is not None and trained_on not in (None, asked):
        print(f"gpunet: warning: {path} was trained on {trained_on}, evaluating it on {asked} "
              "as --dataset asks", file=sys.stderr)
    return asked or trained_on


def test_set(checkpoint: Checkpoint, dataset: str, args: argparse.Namespace,
             backend: Backend) -> tuple[Array, Array]:
    """The first --test-subset test samples of ``dataset``, centred with the mean training
    pixel the checkpoint's model was trained with. Only the test files are read, unless
    the checkpoint (from an older gpunet) lacks that mean: then it comes from the
    dataset's training images (the first ``train_subset`` of them), as it did in training."""
    mean = checkpoint.config.get("mean_pixel")
    raw = load_data(dataset, ("test",) if mean is not None else ("train", "test"),
                    data_dir=args.data_dir, offline=args.offline, progress=not args.quiet)
    if mean is None:
        mean = mean_pixel(raw.train_images[:checkpoint.config.get("train_subset")])
    return model_ready(raw.test_images[:args.test_subset], raw.test_labels[:args.test_subset],
                       mean, backend)

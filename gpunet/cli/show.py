"""``gpunet show``: the notebook's grid of sample images, or training curves from a metrics file."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..data.sources import SOURCES
from ..files import shown
from ..plots import (PICTURE_FORMATS, load_metrics, picture_format, save_image_grid,
                     save_training_curves)
from .data import DEFAULT_DATASET, load_data
from .options import data_options, distinct_files, writable_path
from .status import EXIT_ERROR


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cmd = commands.add_parser("show", parents=[data_options()],
                              help="draw sample images, or a run's curves, to a picture file")
    cmd.add_argument("--metrics", type=Path, default=None, metavar="FILE.json",
                     help="draw the loss and accuracy curves of this metrics file")
    cmd.add_argument("--dataset", choices=list(SOURCES), default=DEFAULT_DATASET,
                     help=f"whose training images to draw (default {DEFAULT_DATASET})")
    cmd.add_argument("--out", type=picture_path, required=True, metavar="PICTURE",
                     help=f"the file to write, in the format its suffix names: "
                          f"{', '.join(PICTURE_FORMATS)}")
    cmd.set_defaults(run=run_show)


def picture_path(text: str) -> Path:
    """An argparse type: a file path whose folder exists, with a picture suffix."""
    path = writable_path(text)
    try:
        picture_format(path)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return path


def run_show(args: argparse.Namespace) -> int:
    distinct_files([("--metrics", args.metrics), ("--out", args.out)], args.data_dir)
    if args.metrics:
        try:
            save_training_curves(load_metrics(args.metrics), args.out)
        except ValueError as exc:  # a missing or malformed metrics file
            print(f"gpunet: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    else:
        raw = load_data(args.dataset, ("train",), data_dir=args.data_dir, offline=args.offline,
                        progress=True, rerun=f"show --out {shlex.quote(str(args.out))}")
        save_image_grid(raw.train_images, raw.train_labels, args.out,
                        class_names=SOURCES[args.dataset].class_names)
    print(f"wrote {shown(args.out)}")
    return 0

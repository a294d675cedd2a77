"""``gpunet show``: the notebook's grid of sample images, or training curves from a metrics file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.datasets import load_raw
from ..data.sources import SOURCES
from ..plots import load_metrics, save_image_grid, save_training_curves
from .options import distinct_files, existing_dir, writable_path

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cmd = commands.add_parser("show", help="draw sample images, or a run's curves, to a PNG")
    cmd.add_argument("--metrics", type=Path, default=None, metavar="FILE.json",
                     help="draw the loss and accuracy curves of this metrics file")
    cmd.add_argument("--dataset", choices=list(SOURCES), default="mnist",
                     help="whose training images to draw (default mnist)")
    cmd.add_argument("--data-dir", type=existing_dir, default=None)
    cmd.add_argument("--out", type=writable_path, required=True, metavar="FILE.png")
    cmd.set_defaults(run=run_show)


def run_show(args: argparse.Namespace) -> int:
    distinct_files([("--metrics", args.metrics), ("--out", args.out)], args.data_dir)
    if args.metrics:
        try:
            save_training_curves(load_metrics(args.metrics), args.out)
        except ValueError as exc:  # a missing or malformed metrics file
            print(f"gpunet: error: {exc}", file=sys.stderr)
            return 1
    else:
        raw = load_raw(args.dataset, args.data_dir)
        print(f"data: {raw.directory}")
        names = FASHION_CLASSES if args.dataset == "fashion-mnist" else None
        save_image_grid(raw.train_images, raw.train_labels, args.out, class_names=names)
    print(f"wrote {args.out}")
    return 0

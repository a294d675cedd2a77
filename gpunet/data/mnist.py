"""``load_mnist``: an MNIST-format dataset, found or downloaded, ready for a model."""
from __future__ import annotations

import dataclasses
import os

from ..backend import Backend, get_backend
from ..train.checks import check_count
from .datasets import load_raw
from .preprocess import Prepared, prepare
from .sources import get_source


def load_mnist(name: str = "mnist", data_dir: str | os.PathLike | None = None, *,
               backend: str | Backend | None = None, download: bool = True,
               progress: bool = True, train_subset: int | None = None,
               test_subset: int | None = None) -> Prepared:
    """Dataset ``name`` ("mnist" or "fashion-mnist") as float32 arrays on ``backend``.

    ``train_x``/``test_x`` are (N, 784) with x = (pixel - mean training pixel) / 256,
    as in the notebook; ``train_y``/``test_y`` are (N, 10) one-hot. The data are looked
    for and downloaded as ``gpunet train`` does (``data_dir``, else $GPUNET_DATA, else
    the cache and the system's copies). ``train_subset``/``test_subset`` keep the first
    N samples (the mean is then that of the N training images). ``directory`` is
    where the files were read, ``class_names`` what each label stands for.
    """
    if train_subset is not None:
        train_subset = check_count("train_subset", train_subset, 1)
    if test_subset is not None:
        test_subset = check_count("test_subset", test_subset, 1)
    raw = load_raw(name, data_dir, download=download, progress=progress)
    prepared = prepare(raw.train_images[:train_subset], raw.train_labels[:train_subset],
                       raw.test_images[:test_subset], raw.test_labels[:test_subset],
                       get_backend(backend))
    return dataclasses.replace(prepared, directory=raw.directory,
                               class_names=get_source(name).class_names)

"""The data a command reads: found or downloaded, announced, and checked against a model."""
from __future__ import annotations

import shlex
from pathlib import Path

from ..backend import Array
from ..checkpoint import CheckpointError, widths
from ..data import DatasetError, RawDataset, find_dataset, load_raw
from ..data.sources import SOURCES, Split
from ..files import shown
from ..layers import Layer

DEFAULT_DATASET = "mnist"


def load_data(dataset: str, splits: tuple[Split, ...], *, data_dir: Path | None, offline: bool,
              progress: bool, rerun: str | None = None) -> RawDataset:
    """The ``splits`` of ``dataset``, from ``data_dir`` or the usual places (downloaded
    unless ``offline``); prints the directory read. When the dataset is not there but
    another one is, the error says to run ``gpunet {rerun} --dataset <other>`` instead."""
    try:
        raw = load_raw(dataset, data_dir, splits=splits, download=not offline, progress=progress,
                       dir_option="--data-dir")
    except DatasetError as exc:
        other = _other_dataset(dataset, data_dir, splits) if rerun else None
        if other is None:
            raise
        given = f" --data-dir {shlex.quote(str(data_dir))}" if data_dir else ""
        raise DatasetError(f"{exc}; or run `gpunet {rerun} --dataset {other}{given}`") from None
    print(f"data: {shown(raw.directory)}")
    return raw


def check_fits(model: Layer, inputs: Array, targets: Array, path: Path, dataset: str) -> None:
    """CheckpointError unless ``model`` (from checkpoint ``path``) takes rows of ``inputs``
    and gives one output per class of ``targets``."""
    expected = (inputs.shape[1], targets.shape[1])
    found = widths(model)
    if found != expected:
        has = (f"takes {found[0]} inputs and gives {found[1]} outputs" if found
               else "has no Linear layer")
        raise CheckpointError(f"{path}: the model {has}, but {dataset} has {expected[0]} inputs "
                              f"and {expected[1]} classes")


def _other_dataset(dataset: str, data_dir: Path | None, splits: tuple[Split, ...]) -> str | None:
    """The first other known dataset found here when ``dataset`` is not (None when it is
    there, only unusable, or nothing else is)."""
    try:
        if find_dataset(dataset, data_dir, splits):
            return None
        return next((other for other in SOURCES
                     if other != dataset and find_dataset(other, data_dir, splits)), None)
    except DatasetError:  # a --data-dir or $GPUNET_DATA that is no directory: nothing is here
        return None

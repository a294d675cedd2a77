"""The settings ``gpunet train`` keeps in a checkpoint's config, and what each must be.

``train --resume`` and ``eval`` read them back, so they check them first: a file
edited by hand gets a CheckpointError naming the setting, as any bad metadata does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..backend import Backend
from ..checkpoint import (MEAN_PIXEL, OPTIMIZER_RATES, Checkpoint, Rule, check_config,
                          load_checkpoint)
from ..models import PRESETS

OPTIMIZERS = ("momentum", "sgd")  # --optimizer's choices


def _count(minimum: int) -> Callable[[Any], bool]:
    """A test of a value: is it a JSON integer of at least ``minimum``?"""
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _subset(value: Any) -> bool:
    """A test of a value: is it null (everything) or a count of samples?"""
    return value is None or _count(1)(value)


SETTINGS: dict[str, Rule] = {
    "dataset": (lambda value: isinstance(value, str), "a dataset name"),
    "model": (lambda value: isinstance(value, str) and value in PRESETS,
              f"one of {', '.join(PRESETS)}"),
    "epochs": (_count(0), "an integer of at least 0"),
    "batch_size": (_count(1), "an integer of at least 1"),
    "seed": (_count(0), "an integer of at least 0"),
    "optimizer": (lambda value: value in OPTIMIZERS, " or ".join(OPTIMIZERS)),
    "train_subset": (_subset, "null or an integer of at least 1"),
    "test_subset": (_subset, "null or an integer of at least 1"),
    **OPTIMIZER_RATES,
    "mean_pixel": MEAN_PIXEL,
}


def load_run(path: Path, backend: Backend) -> Checkpoint:
    """The checkpoint ``path`` on ``backend``, its run settings checked;
    CheckpointError naming the first that is bad."""
    checkpoint = load_checkpoint(path, backend)
    check_config(checkpoint.config, SETTINGS, path)
    return checkpoint

"""The epoch loop the experiments share: ``train_epoch`` for each numbered
epoch (so its random draws follow ``gpunet.train.epoch``'s rule, as ``fit``'s
do), then progress shown once per epoch."""
from __future__ import annotations

from typing import Any, Callable

import tqdm

from ..layers import Layer
from ..losses import Loss
from ..optimizers import Optimizer
from ..train.checks import check_count
from ..train.epoch import train_epoch


def train_epochs(model: Layer, loss: Loss, optimizer: Optimizer, inputs: Any, targets: Any, *,
                 epochs: int, batch_size: int, label: str, progress: bool,
                 score: Callable[[], float] | None = None) -> tuple[list[float], list[float]]:
    """Run ``epochs`` epochs; returns the per-epoch summed losses and, when
    ``score`` is given, its value after each epoch (shown as 'acc')."""
    epochs = check_count("epochs", epochs, 0)
    batch_size = check_count("batch_size", batch_size, 1)
    losses: list[float] = []
    scores: list[float] = []
    with tqdm.trange(1, epochs + 1, disable=not progress) as bar:
        for epoch in bar:
            losses.append(float(train_epoch(model, loss, optimizer, inputs, targets, batch_size,
                                            epoch=epoch)))
            text = f"{label} loss: {losses[-1]:.3f}"
            if score is not None:
                scores.append(score())
                text += f" acc: {scores[-1]:.2f}"
            bar.set_description(text)
    return losses, scores

"""Checkpoints: parameters, optimizer state and training state in one safetensors file.

The file holds only arrays and a JSON header (never pickle), so loading one
runs no code: the architecture is data that ``layers.build`` turns into known
layer types, once the metadata are checked (``metadata.py``) and the arrays
found to fit (``model.py``). The config is the caller's JSON object, checked
by its reader (``check_config``). Saving goes through ``atomic.replacing``, so
an interrupted save leaves the previous checkpoint whole.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from ..atomic import replacing
from ..backend import Backend, backend_of, get_backend
from ..layers import Layer, describe
from ..optimizers import GradientDescent, Momentum, Optimizer
from .container import FORMAT, CheckpointError, metadata_of, numbered, read_file, tensors
from .metadata import OPTIMIZER_RATES, Rule, check_config, fields
from .model import model_from, momentum_state, widths
from .trained_on import MEAN_PIXEL, recorded

__all__ = ["Checkpoint", "CheckpointError", "MEAN_PIXEL", "OPTIMIZER_RATES", "Rule",
           "check_config", "load_checkpoint", "save_checkpoint", "widths"]


@dataclass
class Checkpoint:
    model: Layer
    optimizer: Optimizer
    epoch: int                       # epochs completed
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    version: str = ""


def save_checkpoint(path: str | os.PathLike, model: Layer, optimizer: Optimizer, *, epoch: int,
                    seed: int, dataset: str | None = None, mean_pixel: float | None = None,
                    config: dict[str, Any] | None = None,
                    history: list[dict[str, Any]] | None = None) -> Path:
    """Write the checkpoint atomically to ``path`` and return it; CheckpointError,
    writing nothing, for metadata that ``load_checkpoint`` would refuse.

    ``config`` is any JSON object, the caller's; ``dataset`` (a name ``load_mnist``
    knows) and ``mean_pixel`` (its result's ``.mean_pixel``) are recorded in it, so
    that the model can be tested on the data it was trained on, centred as in
    training; ValueError if ``config`` says otherwise."""
    from .. import __version__
    config = recorded(config or {}, dataset, mean_pixel, path)
    params = model.params()
    backend_arrays = {f"param.{i}": p for i, p in enumerate(params)}
    if isinstance(optimizer, Momentum):
        backend_arrays.update({f"optimizer.update.{i}": u for i, u in enumerate(optimizer.updates)})
    tensors = {name: np.ascontiguousarray(_host(array)) for name, array in backend_arrays.items()}
    metadata = {"format": FORMAT, "gpunet_version": __version__, "epoch": str(epoch),
                "seed": str(seed), "architecture": json.dumps(describe(model)),
                "optimizer": json.dumps(_describe_optimizer(optimizer)),
                "config": json.dumps(config), "history": json.dumps(history or [])}
    fields(metadata, path)
    with replacing(path) as file:
        file.write(safetensors.numpy.save(tensors, metadata=metadata))
    return Path(path)


def load_checkpoint(path: str | os.PathLike, backend: str | Backend | None = None) -> Checkpoint:
    """Rebuild the model and optimizer saved in ``path`` on ``backend`` (a name or a
    Backend, as ``get_backend`` takes; its default if None); CheckpointError for
    anything that is not a valid gpunet checkpoint. The metadata are checked, and
    the architecture against the arrays in the file, before anything is built."""
    backend = get_backend(backend)
    data = read_file(Path(path))
    checked = fields(metadata_of(data, path), path)
    arrays = tensors(data, path)
    model = model_from(checked["architecture"], numbered(arrays, "param.", path), backend, path)
    optimizer = checked["optimizer"]
    if isinstance(optimizer, Momentum):
        optimizer.updates = momentum_state(model, numbered(arrays, "optimizer.update.", path),
                                           backend, path)
    return Checkpoint(model, optimizer, checked["epoch"], checked["seed"], checked["config"],
                      checked["history"], checked["gpunet_version"])


def _host(array: Any) -> np.ndarray:
    return backend_of(array).to_numpy(array)


def _describe_optimizer(optimizer: Optimizer) -> dict[str, Any]:
    if isinstance(optimizer, Momentum):
        return {"type": "Momentum", "learning_rate": optimizer.lr, "momentum": optimizer.mo}
    if isinstance(optimizer, GradientDescent):
        return {"type": "GradientDescent", "learning_rate": optimizer.lr}
    raise ValueError(f"cannot save a {type(optimizer).__name__} optimizer")

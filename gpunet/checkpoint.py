"""Checkpoints: parameters, optimizer state and training state in one safetensors file.

The file holds only arrays and a JSON header (never pickle), so loading one
runs no code: the architecture is data that ``layers.build`` turns into known
layer types. Saving goes through ``atomic.replacing``, so an interrupted save leaves the
previous checkpoint whole.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from .atomic import replacing
from .backend import Backend, backend_of
from .layers import Layer, build, describe
from .optimizers import GradientDescent, Momentum, Optimizer, update_pairs

FORMAT = "gpunet-checkpoint/1"
MAX_HEADER = 100 * 2 ** 20
PICKLE_OPCODE = 0x80


class CheckpointError(ValueError):
    """A file that is not a usable gpunet checkpoint; the message says why."""


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
                    seed: int, config: dict[str, Any] | None = None,
                    history: list[dict[str, Any]] | None = None) -> Path:
    """Write the checkpoint atomically to ``path`` and return it."""
    from . import __version__
    params = model.params()
    backend_arrays = {f"param.{i}": p for i, p in enumerate(params)}
    if isinstance(optimizer, Momentum):
        backend_arrays.update({f"optimizer.update.{i}": u for i, u in enumerate(optimizer.updates)})
    tensors = {name: np.ascontiguousarray(_host(array)) for name, array in backend_arrays.items()}
    metadata = {"format": FORMAT, "gpunet_version": __version__, "epoch": str(epoch),
                "seed": str(seed), "architecture": json.dumps(describe(model)),
                "optimizer": json.dumps(_describe_optimizer(optimizer)),
                "config": json.dumps(config or {}), "history": json.dumps(history or [])}
    with replacing(path) as file:
        file.write(safetensors.numpy.save(tensors, metadata=metadata))
    return Path(path)


def load_checkpoint(path: str | os.PathLike, backend: Backend) -> Checkpoint:
    """Rebuild the model and optimizer saved in ``path`` on ``backend``;
    CheckpointError for anything that is not a valid gpunet checkpoint."""
    data = _read(Path(path))
    metadata = _metadata(data, path)
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as exc:  # safetensors raises its own error types for bad layouts
        raise CheckpointError(f"{path}: damaged safetensors data ({exc})") from None
    try:
        model = build(json.loads(metadata["architecture"]), backend=backend,
                      dtype=tensors["param.0"].dtype if "param.0" in tensors else None)
        optimizer = _build_optimizer(json.loads(metadata["optimizer"]))
        epoch, seed = int(metadata["epoch"]), int(metadata["seed"])
        config, history = json.loads(metadata["config"]), json.loads(metadata["history"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid checkpoint metadata ({exc})") from None
    _restore(model.params(), _numbered(tensors, "param.", path), path)
    if isinstance(optimizer, Momentum):
        updates = _numbered(tensors, "optimizer.update.", path)
        expected = [param.shape for param, _ in update_pairs(model)]
        if updates and [u.shape for u in updates] != expected:
            raise CheckpointError(f"{path}: the momentum state has shapes "
                                  f"{[u.shape for u in updates]}, the model needs {expected}")
        optimizer.updates = [backend.asarray(u) for u in updates]
    return Checkpoint(model, optimizer, epoch, seed, config, history, metadata["gpunet_version"])


def _host(array: Any) -> np.ndarray:
    return backend_of(array).to_numpy(array)


def _describe_optimizer(optimizer: Optimizer) -> dict[str, Any]:
    if isinstance(optimizer, Momentum):
        return {"type": "Momentum", "learning_rate": optimizer.lr, "momentum": optimizer.mo}
    if isinstance(optimizer, GradientDescent):
        return {"type": "GradientDescent", "learning_rate": optimizer.lr}
    raise ValueError(f"cannot save a {type(optimizer).__name__} optimizer")


def _build_optimizer(spec: dict[str, Any]) -> Optimizer:
    if spec.get("type") == "Momentum":
        return Momentum(spec["learning_rate"], spec["momentum"])
    if spec.get("type") == "GradientDescent":
        return GradientDescent(spec["learning_rate"])
    raise ValueError(f"unknown optimizer {spec!r}")


def _numbered(tensors: dict[str, np.ndarray], prefix: str, path: Any) -> list[np.ndarray]:
    count = sum(name.startswith(prefix) for name in tensors)
    try:
        return [tensors[f"{prefix}{i}"] for i in range(count)]
    except KeyError as exc:
        raise CheckpointError(f"{path}: missing array {exc}") from None


def _restore(params: list[Any], arrays: list[np.ndarray], path: Any) -> None:
    """Copy saved values into the freshly built parameters, checking they fit."""
    if len(arrays) != len(params):
        raise CheckpointError(f"{path}: the architecture has {len(params)} parameters but the "
                              f"file holds {len(arrays)}")
    for i, (param, array) in enumerate(zip(params, arrays)):
        if param.shape != array.shape:
            raise CheckpointError(f"{path}: parameter {i} has shape {array.shape} in the file but "
                                  f"the architecture needs {param.shape}")
        param[...] = array


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror})") from None


def _metadata(data: bytes, path: Any) -> dict[str, str]:
    """The header's metadata, after checking this is a safetensors file from gpunet."""
    if data[:1] and data[0] == PICKLE_OPCODE:
        raise CheckpointError(f"{path}: this is a pickle file; gpunet checkpoints are safetensors "
                              "files and pickles are never loaded")
    if len(data) < 8:
        raise CheckpointError(f"{path}: too short to be a checkpoint ({len(data)} bytes)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(MAX_HEADER, len(data) - 8):
        raise CheckpointError(f"{path}: not a safetensors file (or truncated): header of "
                              f"{size} bytes in a {len(data)}-byte file")
    try:
        header = json.loads(data[8:8 + size])
        metadata = header["__metadata__"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path}: not a gpunet checkpoint (no readable metadata)") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gpunet checkpoint (format "
                              f"{metadata.get('format') if isinstance(metadata, dict) else None!r})")
    return metadata

"""A checkpoint's metadata: its JSON fields, and what each must be.

Everything is checked before anything is built: an edited or hostile file gets
a CheckpointError naming the field, never an exception from deep inside (a
RecursionError, a 7 TiB allocation).
"""
from __future__ import annotations

import json
import re
import reprlib
from typing import Any, Callable

from ..layers.spec import parameter_shapes
from ..models import PRESETS
from ..optimizers import GradientDescent, Momentum, Optimizer, valid_learning_rate, valid_momentum
from .container import CheckpointError

MAX_DIGITS = 4300  # of the epoch and the seed: as many as Python's int() reads


def _count(minimum: int) -> Callable[[Any], bool]:
    """A test of a value: is it a JSON integer of at least ``minimum``?"""
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _rate(check: Callable[[float], float]) -> Callable[[Any], bool]:
    """A test of a value: is it a JSON number that ``check``, an optimizer's own rule,
    accepts?"""
    def valid(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        try:
            check(value)
        except (ValueError, OverflowError):  # OverflowError: an integer beyond any float
            return False
        return True
    return valid


def _pixel(value: Any) -> bool:
    """A test of a value: is it a JSON number in [0, 255], a pixel's range?"""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= 255


# The settings ``gpunet train`` keeps in a checkpoint's config (and the optimizer's
# rates), and what each must be.
CONFIG: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dataset": (lambda value: isinstance(value, str), "a dataset name"),
    "model": (lambda value: value in PRESETS, f"one of {', '.join(PRESETS)}"),
    "epochs": (_count(0), "an integer of at least 0"),
    "batch_size": (_count(1), "an integer of at least 1"),
    "seed": (_count(0), "an integer of at least 0"),
    "optimizer": (lambda value: value in ("momentum", "sgd"), "momentum or sgd"),
    "train_subset": (lambda value: value is None or _count(1)(value),
                     "null or an integer of at least 1"),
    "test_subset": (lambda value: value is None or _count(1)(value),
                    "null or an integer of at least 1"),
    "learning_rate": (_rate(valid_learning_rate), "a number in [0, inf)"),
    "momentum": (_rate(valid_momentum), "a number in [0, 1)"),
    "mean_pixel": (_pixel, "a number in [0, 255]"),
}


OPTIMIZER_KEYS = {"Momentum": {"type", "learning_rate", "momentum"},
                  "GradientDescent": {"type", "learning_rate"}}


def fields(metadata: dict[str, Any], path: Any) -> dict[str, Any]:
    """The metadata's fields, parsed and checked (the architecture as data, the
    optimizer built); CheckpointError naming the first bad one."""
    parsers: dict[str, Callable[[str, str], Any]] = {
        "architecture": _architecture, "optimizer": _optimizer, "epoch": _whole, "seed": _whole,
        "config": _config, "history": _history, "gpunet_version": lambda text, name: text}
    fields = {}
    for name, parse in parsers.items():
        try:
            if not isinstance(metadata.get(name), str):
                raise ValueError(f"{name} is missing" if name not in metadata else
                                 f"{name} must be a string, got {reprlib.repr(metadata[name])}")
            fields[name] = parse(metadata[name], name)
        except ValueError as exc:
            raise invalid(path, str(exc)) from None
    return fields


def invalid(path: Any, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: invalid checkpoint metadata: {problem}")


def _json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{name} is nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"{name} is not JSON ({exc})") from None


def _architecture(text: str, name: str) -> Any:
    """A layer description that ``build`` accepts."""
    architecture = _json(text, name)
    try:
        parameter_shapes(architecture)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return architecture


def _whole(text: str, name: str) -> int:
    if not re.fullmatch(f"[0-9]{{1,{MAX_DIGITS}}}", text):
        raise ValueError(f"{name} must be a non-negative integer, got {reprlib.repr(text)}")
    return int(text)


def _checked(value: Any, name: str, valid: Callable[[Any], bool], expected: str) -> None:
    if not valid(value):
        raise ValueError(f"{name} must be {expected}, got {reprlib.repr(value)}")


def _config(text: str, name: str) -> dict[str, Any]:
    """The settings of the run; those ``gpunet train`` reads must be valid, others pass."""
    config = _json(text, name)
    _checked(config, name, lambda value: isinstance(value, dict), "a JSON object")
    for key, (valid, expected) in CONFIG.items():
        if key in config:
            _checked(config[key], f"{name}.{key}", valid, expected)
    return config


def _history(text: str, name: str) -> list[dict[str, Any]]:
    history = _json(text, name)
    _checked(history, name, lambda value: isinstance(value, list) and all(
        isinstance(entry, dict) for entry in value), "a JSON list of objects")
    return history


def _optimizer(text: str, name: str) -> Optimizer:
    spec = _json(text, name)
    kind = spec.get("type") if isinstance(spec, dict) else None
    if not isinstance(kind, str) or kind not in OPTIMIZER_KEYS:
        raise ValueError(f"{name} must be a JSON object whose type is Momentum or "
                         f"GradientDescent, got {reprlib.repr(spec)}")
    if spec.keys() != OPTIMIZER_KEYS[kind]:
        raise ValueError(f"{name}: a {kind} has the keys {sorted(OPTIMIZER_KEYS[kind])}, "
                         f"got {reprlib.repr(sorted(spec))}")
    for key in sorted(spec.keys() - {"type"}):
        _checked(spec[key], f"{name}.{key}", *CONFIG[key])
    if kind == "Momentum":
        return Momentum(spec["learning_rate"], spec["momentum"])
    return GradientDescent(spec["learning_rate"])

"""A checkpoint's metadata: its JSON fields, and what each must be.

Everything is checked before anything is built: an edited or hostile file gets
a CheckpointError naming the field, never an exception from deep inside (a
RecursionError, a 7 TiB allocation). The config is its writer's JSON object:
the format checks only that it is one, and ``check_config`` checks its keys
against the rules of whoever reads them.
"""
from __future__ import annotations

import json
import re
import reprlib
from typing import Any, Callable

from ..layers.spec import parameter_shapes
from ..optimizers import GradientDescent, Momentum, Optimizer, valid_learning_rate, valid_momentum
from .container import CheckpointError

MAX_DIGITS = 4300  # of the epoch and the seed: as many as Python's int() reads


Rule = tuple[Callable[[Any], bool], str]  # a test of a JSON value, and what it must be


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


# The rates of a saved optimizer, and what each must be.
OPTIMIZER_RATES: dict[str, Rule] = {
    "learning_rate": (_rate(valid_learning_rate), "a number in [0, inf)"),
    "momentum": (_rate(valid_momentum), "a number in [0, 1)")}


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
    """The caller's settings: any JSON object (``check_config`` checks its keys)."""
    config = _json(text, name)
    _checked(config, name, lambda value: isinstance(value, dict), "a JSON object")
    return config


def check_config(config: dict[str, Any], rules: dict[str, Rule], path: Any) -> None:
    """CheckpointError naming the first key of ``config`` that breaks its rule in
    ``rules``, a caller's: the keys of a config are its writer's, not the format's."""
    for key, rule in rules.items():
        if key in config:
            try:
                _checked(config[key], f"config.{key}", *rule)
            except ValueError as exc:
                raise invalid(path, str(exc)) from None


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
        _checked(spec[key], f"{name}.{key}", *OPTIMIZER_RATES[key])
    if kind == "Momentum":
        return Momentum(spec["learning_rate"], spec["momentum"])
    return GradientDescent(spec["learning_rate"])

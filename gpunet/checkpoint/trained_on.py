"""What a model was trained on, as ``save_checkpoint``'s ``dataset=`` and ``mean_pixel=``
record it in the config: the data's name and the mean pixel that centred its inputs."""
from __future__ import annotations

import numbers
from typing import Any

from ..data.sources import get_source
from .metadata import Rule, check_config


def _pixel(value: Any) -> bool:
    """A test of a value: is it a JSON number in [0, 255], a pixel's range?"""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= 255


MEAN_PIXEL: Rule = (_pixel, "a number in [0, 255]")


def recorded(config: dict[str, Any], dataset: str | None, mean_pixel: float | None,
             path: Any) -> dict[str, Any]:
    """A copy of ``config`` holding ``dataset`` and ``mean_pixel`` too, those not None:
    DatasetError for a dataset ``load_mnist`` does not know, CheckpointError for a mean
    outside a pixel's range, ValueError where ``config`` says otherwise."""
    config = dict(config)
    if dataset is not None:
        get_source(dataset)  # DatasetError naming the known datasets
        _record(config, "dataset", dataset)
    if mean_pixel is not None:
        is_number = isinstance(mean_pixel, numbers.Real) and not isinstance(mean_pixel, bool)
        _record(config, "mean_pixel", float(mean_pixel) if is_number else mean_pixel)
        check_config(config, {"mean_pixel": MEAN_PIXEL}, path)
    return config


def _record(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``config[key]``; ValueError if it holds another value already."""
    if config.get(key, value) != value:
        raise ValueError(f"{key} {value!r} contradicts the config's {config[key]!r}")
    config[key] = value

"""The benchmark's PNG plots: training throughput and per-operation bandwidth.

Both take the harness's list of result records, plot the kind they are about
and skip the rest, including records that lack a field the plot needs. A
noisy measurement (its readings spread by more than 25% of their median) is
ringed in black, and the legend says what the ring means.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

from ..atomic import writable
from ..plots import new_figure, write_png
from .timing import NOISY_SPREAD

MODELS = ("logistic", "deep", "wide")
NOISY_LABEL = f"noisy: spread > {NOISY_SPREAD:.0%} of median"
COLUMNS = 3
LINE = {"marker": "o", "markersize": 4}
POINT = {"marker": "D", "markersize": 8, "zorder": 3}  # a one-point series, over the lines
RING = {"linestyle": "none", "marker": "o", "markersize": 13, "markerfacecolor": "none",
        "markeredgecolor": "black", "markeredgewidth": 1.5, "zorder": 4}

Series = dict[str, list[tuple[float, float, bool]]]  # label -> (x, y, noisy) points


def throughput_figure(results: Sequence[Mapping], path: str | os.PathLike, *,
                      what: str = "epoch") -> Path | None:
    """Plot samples/s against batch size, one panel per model and one line per
    (peer, backend), from the training records timed per ``what`` (per step
    if there are none), as a PNG at ``path``; None, writing nothing, when
    there is nothing to plot."""
    for timed in dict.fromkeys((what, "step")):
        panels = _panels(_matching(results, case="train", what=timed), "model",
                         ("peer", "backend"), "batch_size", "samples_per_s")
        if panels:
            return _draw(panels, path, first=MODELS, title=f"Training throughput, timed per {timed}",
                         xlabel="batch size", ylabel="samples/s")
    return None


def bandwidth_figure(results: Sequence[Mapping], path: str | os.PathLike) -> Path | None:
    """Plot achieved GB/s against size in elements, one panel per operation
    and one line per (variant, backend), as a PNG at ``path``; None, writing
    nothing, when there are no operation records."""
    panels = _panels(_matching(results, case="op"), "op", ("variant", "backend"),
                     "size", "gb_per_s")
    if not panels:
        return None
    return _draw(panels, path, first=(), title="Achieved memory bandwidth per operation",
                 xlabel="size (elements)", ylabel="GB/s")


def _matching(results: Iterable[Any], **fields: str) -> list[Mapping]:
    """The records whose ``fields`` have the given values."""
    return [record for record in results if isinstance(record, Mapping)
            and all(record.get(key) == value for key, value in fields.items())]


def _panels(records: Iterable[Mapping], panel_key: str, series_keys: tuple[str, ...],
            x_key: str, y_key: str) -> dict[str, Series]:
    """The records' (x, y, noisy) points by panel name, then by series label
    (the series fields' values joined), skipping records without non-empty
    string names or with an x or y that is not a positive finite number."""
    panels: dict[str, Series] = {}
    for record in records:
        names = [record.get(key) for key in (panel_key, *series_keys)]
        x, y = _positive(record.get(x_key)), _positive(record.get(y_key))
        if x is None or y is None or not all(isinstance(name, str) and name for name in names):
            continue
        series = panels.setdefault(names[0], {})
        series.setdefault(" ".join(names[1:]), []).append((x, y, record.get("noisy") is True))
    return panels


def _positive(value: Any) -> float | None:
    """``value`` as a float if it is a positive finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _draw(panels: dict[str, Series], path: str | os.PathLike, *, first: Sequence[str],
          title: str, xlabel: str, ylabel: str) -> Path:
    """Draw the panels in a grid, ``first`` ones first in that order, the rest
    as they came, on log-log axes with one colour per series label throughout;
    a single-point series shows as a large marker, a noisy point inside a black
    ring. The layout keeps the title clear of the panels' titles. Write the
    PNG to ``path``."""
    destination = writable(path)
    names = sorted(panels, key=lambda name: first.index(name) if name in first else len(first))
    labels = list(dict.fromkeys(label for series in panels.values() for label in series))
    cols = min(len(names), COLUMNS)
    rows = math.ceil(len(names) / cols)
    figure = new_figure(figsize=(4.5 * cols, 3.5 * rows + 0.5))
    figure.set_layout_engine("constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(names):]:
        ax.set_axis_off()
    for ax, name in zip(axes, names):
        for label, points in panels[name].items():
            xs, ys, _ = zip(*sorted(points))
            ax.plot(xs, ys, **(POINT if len(points) == 1 else LINE),
                    color=f"C{labels.index(label)}", label=label)
        noisy = [(x, y) for points in panels[name].values() for x, y, flag in points if flag]
        if noisy:
            ax.plot(*zip(*noisy), **RING, label=NOISY_LABEL)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel, xscale="log", yscale="log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(title)
    return write_png(figure, destination)

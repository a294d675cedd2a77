"""The benchmark's PNG plots: training throughput and per-operation bandwidth.

Both take the harness's list of result records, plot the kind they are about
and skip the rest, including records that lack a field the plot needs. Each
point is a median, with whiskers from the slowest reading's rate to the
fastest's where the record keeps them; a noisy measurement (its readings
spread by more than 25% of their median) is ringed in black, and the legend
says what the ring means. The log axes read in plain numbers (1, 3, 10, 30,
100, ..., 1k, 10k, 1M), never powers of ten.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any, NamedTuple

from ..atomic import writable
from ..models import PRESETS
from ..plots import new_figure, write_png
from .flags import NOISY_SPREAD

NOISY_LABEL = f"noisy: spread > {NOISY_SPREAD:.0%} of median"
COLUMNS = 3
LINE = {"marker": "o", "markersize": 4}
POINT = {"marker": "D", "markersize": 8, "zorder": 3}  # a one-point series, over the lines
RING = {"linestyle": "none", "marker": "o", "markersize": 13, "markerfacecolor": "none",
        "markeredgecolor": "black", "markeredgewidth": 1.5, "zorder": 4}
WHISKER = {"fmt": "none", "capsize": 2, "elinewidth": 1}
# The leading digits of the ticks a log axis labels, by the most decades it spans:
# a wide axis only its powers of ten, narrower ones their 3s too, then 2s and 5s, then all.
LABELLED_DIGITS = ((0.5, range(1, 10)), (1.0, (1, 2, 3, 5)), (3.0, (1, 3)), (math.inf, (1,)))
SUFFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


class Point(NamedTuple):
    x: float
    y: float               # the rate at the median time
    low: float | None      # the rates at the slowest and the fastest reading; None where unknown
    high: float | None
    noisy: bool


Series = dict[str, list[Point]]  # label -> points


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
            return _draw(panels, path, first=PRESETS,
                         title=f"Training throughput, timed per {timed} (median; whiskers: min to max)",
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
    return _draw(panels, path, first=(),
                 title="Achieved memory bandwidth per operation (median; whiskers: min to max)",
                 xlabel="size (elements)", ylabel="GB/s")


def _matching(results: Iterable[Any], **fields: str) -> list[Mapping]:
    """The records whose ``fields`` have the given values."""
    return [record for record in results if isinstance(record, Mapping)
            and all(record.get(key) == value for key, value in fields.items())]


def _panels(records: Iterable[Mapping], panel_key: str, series_keys: tuple[str, ...],
            x_key: str, y_key: str) -> dict[str, Series]:
    """The records' points by panel name, then by series label (the series
    fields' values joined), skipping records without non-empty string names
    or with an x or y that is not a positive finite number."""
    panels: dict[str, Series] = {}
    for record in records:
        names = [record.get(key) for key in (panel_key, *series_keys)]
        x, y = _positive(record.get(x_key)), _positive(record.get(y_key))
        if x is None or y is None or not all(isinstance(name, str) and name for name in names):
            continue
        series = panels.setdefault(names[0], {})
        low, high = _whisker(record, y)
        series.setdefault(" ".join(names[1:]), []).append(
            Point(x, y, low, high, record.get("noisy") is True))
    return panels


def _whisker(record: Mapping, y: float) -> tuple[float | None, float | None]:
    """The rates at the record's slowest and fastest readings, ``y`` being the
    rate at its median time (a rate goes as 1 / time); (None, None) unless
    its min, median and max times are positive finite numbers."""
    times = [_positive(record.get(key)) for key in ("max_s", "median_s", "min_s")]
    if None in times:
        return None, None
    slowest, median, fastest = times
    return y * median / slowest, y * median / fastest


def _positive(value: Any) -> float | None:
    """``value`` as a float if it is a positive finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _draw(panels: dict[str, Series], path: str | os.PathLike, *, first: Sequence[str],
          title: str, xlabel: str, ylabel: str) -> Path:
    """Draw the panels in a grid, ``first`` ones first in that order, the rest
    as they came, on log-log axes with one colour per series label throughout;
    a single-point series shows as a large marker, a point's min-max whisker
    in its colour, a noisy point inside a black ring. The layout keeps the
    title clear of the panels' titles. Write the PNG to ``path``."""
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
            color = f"C{labels.index(label)}"
            points = sorted(points)
            ax.plot([p.x for p in points], [p.y for p in points],
                    **(POINT if len(points) == 1 else LINE), color=color, label=label)
            whiskered = [p for p in points if p.low is not None]
            if whiskered:
                ax.errorbar([p.x for p in whiskered], [p.y for p in whiskered],
                            yerr=[[p.y - p.low for p in whiskered], [p.high - p.y for p in whiskered]],
                            ecolor=color, **WHISKER)
        noisy = [(p.x, p.y) for points in panels[name].values() for p in points if p.noisy]
        if noisy:
            ax.plot(*zip(*noisy), **RING, label=NOISY_LABEL)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel, xscale="log", yscale="log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(_plain_log_formatter())
            axis.set_minor_formatter(_plain_log_formatter())
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(title)
    return write_png(figure, destination)


def _plain_log_formatter() -> Any:
    """A matplotlib tick formatter for a log axis: ``_tick_label`` of each tick."""
    from matplotlib.ticker import Formatter

    class PlainLog(Formatter):
        def __call__(self, value: float, pos: int | None = None) -> str:
            low, high = sorted(self.axis.get_view_interval())
            return _tick_label(value, math.log10(high / low))

    return PlainLog()


def _tick_label(value: float, decades: float) -> str:
    """The label of a tick at ``value`` on a log axis that spans ``decades``:
    the number in plain figures (0.3, 30, 1k, 300k, 10M) if its leading digit
    is one that ``LABELLED_DIGITS`` labels at that span, else ''."""
    leading = value / 10 ** math.floor(math.log10(value) + 1e-6)
    digits = next(digits for most, digits in LABELLED_DIGITS if decades <= most)
    if not any(math.isclose(leading, digit, rel_tol=1e-6) for digit in digits):
        return ""
    scale, suffix = next(((scale, suffix) for scale, suffix in SUFFIXES
                          if value >= scale * (1 - 1e-6)), (1.0, ""))
    return f"{value / scale:.6g}{suffix}"

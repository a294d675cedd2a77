"""Pictures: a grid of sample images and the training curves, as PNG, JPEG, SVG or PDF files.

matplotlib is an optional extra (``pip install 'gpunet[plots]'``): it is
imported only when a picture is drawn, so ``import gpunet.plots`` works
without it. Figures are drawn with the Agg canvas, never through pyplot, so
no global state changes and no window opens.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import replacing, writable
from .files import Unreadable, open_regular, shown

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


# File name suffix -> the format matplotlib writes (JPEG through Pillow, a matplotlib dependency).
PICTURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".svg": "svg", ".pdf": "pdf"}


MAX_METRICS = 64 * 2 ** 20  # bytes read at most: gpunet train writes a few hundred per epoch


class MissingDependency(RuntimeError):
    """matplotlib, needed to draw pictures, cannot be imported."""


def picture_format(path: str | os.PathLike) -> str:
    """The format of the picture file ``path``, from its suffix (what its name ends
    in from its last dot: a file named ``.png`` is a PNG); ValueError naming the
    suffixes known (PICTURE_FORMATS) for any other."""
    name = Path(path).name
    suffix = name[name.rfind("."):].lower() if "." in name else ""  # ".png" alone too
    if suffix not in PICTURE_FORMATS:
        raise ValueError(f"cannot write a picture to {os.fspath(path)!r}: the name must end in "
                         f"{', '.join(PICTURE_FORMATS)}")
    return PICTURE_FORMATS[suffix]


def save_image_grid(images: np.ndarray, labels: np.ndarray, path: str | os.PathLike, *,
                    rows: int = 10, cols: int = 10,
                    class_names: Sequence[str] | None = None) -> Path:
    """Draw the first ``rows * cols`` images, (N, H, W) or flat (N, H*H), in a
    grid, row by row, each titled with its label (``class_names[label]`` when
    given), and write it to ``path`` in the format its suffix names (PICTURE_FORMATS).
    With fewer images than cells the grid is drawn as far as they go and the
    remaining cells stay empty.
    """
    destination = _destination(path)
    squares = _square_images(images)
    titles = _titles(labels, len(squares), class_names)
    for name, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    figure = new_figure(figsize=(cols, rows * 1.2))
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.96, wspace=0.1, hspace=0.4)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, title in zip(axes, squares, titles):
        ax.imshow(image, cmap="Greys")
        ax.set_title(title, fontsize=8)
    return write_picture(figure, destination)


def save_training_curves(metrics: Mapping, path: str | os.PathLike) -> Path:
    """Draw the loss and test loss, and the accuracy and test accuracy, per epoch
    of the ``history`` in ``metrics`` (a training metrics file's contents), and
    write them to ``path`` in the format its suffix names (PICTURE_FORMATS)."""
    destination = _destination(path)
    history = _history(metrics)
    figure = new_figure(figsize=(10, 4))
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    _plot(loss_ax, history, "loss", "training loss")
    _plot(loss_ax, history, "test_loss", "test loss")
    _scale_losses(loss_ax, history)
    _plot(accuracy_ax, history, "accuracy", "training accuracy")
    _plot(accuracy_ax, history, "test_accuracy", "test accuracy")
    for ax, ylabel in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)  # one epoch too
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend()
    title = " ".join(str(metrics[key]) for key in ("dataset", "model") if metrics.get(key))
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return write_picture(figure, destination)


def load_metrics(path: str | os.PathLike) -> dict:
    """Read a training metrics JSON file, checking it has a usable history;
    ValueError in one line, naming the file, if it cannot: one that is not a
    regular file (a FIFO, /dev/zero) or has more than MAX_METRICS bytes is not read."""
    try:
        with open_regular(path, "metrics file") as file:
            data = file.read(MAX_METRICS + 1)
        if len(data) > MAX_METRICS:
            raise ValueError(f"more than {MAX_METRICS:,} bytes, the most a metrics file "
                             "is read with")
        metrics = json.loads(data.decode("utf-8"))
        _history(metrics)
    except Unreadable as err:
        raise ValueError(f"cannot read metrics file {err}") from None
    except OSError as err:
        raise ValueError(f"cannot read metrics file {shown(path)}: "
                         f"{err.strerror or err}") from None
    except UnicodeDecodeError as err:
        problem = f"not JSON (byte {err.object[err.start]:#04x} at offset {err.start} is not UTF-8)"
    except json.JSONDecodeError as err:
        problem = f"not JSON ({err.msg} at line {err.lineno} column {err.colno})"
    except RecursionError:
        problem = "JSON nested too deeply to read"
    except ValueError as err:
        problem = str(err)
    else:
        return metrics
    raise ValueError(f"{shown(path)} is not a metrics file: {problem}")


def _history(metrics: Any) -> list[Mapping]:
    """The metrics' history entries, each with a number for its epoch and its loss."""
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics must be a JSON object, got {type(metrics).__name__}")
    history = metrics.get("history")
    if not isinstance(history, list) or not history:
        raise ValueError("metrics need a non-empty 'history' list of epochs")
    for i, entry in enumerate(history):
        if not isinstance(entry, Mapping) or not all(_is_number(entry.get(key))
                                                     for key in ("epoch", "loss")):
            raise ValueError(f"metrics history entry {i} needs numbers 'epoch' and 'loss', "
                             f"got {entry!r}")
    return history


def _plot(ax: Axes, history: list[Mapping], key: str, label: str) -> None:
    """Plot ``key`` against epoch, over the entries where it can be placed on
    an axis (not a diverged loss: infinite, or beyond PLACEABLE)."""
    points = [(entry["epoch"], entry[key]) for entry in history
              if _placeable(entry.get(key)) and _placeable(entry["epoch"])]
    if points:
        ax.plot(*zip(*points), marker="o", label=label)


# Beyond this a value is not drawn: matplotlib's axis arithmetic (margins, ticks, on a
# log axis too) overflows.
PLACEABLE = 1e250


def _scale_losses(ax: Axes, history: list[Mapping]) -> None:
    """A log axis for positive losses that span more than three decades, so
    that a diverging run's stay readable; labelled in plain numbers (0.1, 1,
    10, ...) where they are short, from 1e-4 to 1e5, else as powers of ten."""
    losses = [entry[key] for entry in history for key in ("loss", "test_loss")
              if _placeable(entry.get(key))]
    if losses and min(losses) > 0 and max(losses) > 1e3 * min(losses):
        ax.set_yscale("log")
        if min(losses) >= 1e-4 and max(losses) < 1e5:
            from matplotlib.ticker import FuncFormatter
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _placeable(value: Any) -> bool:
    """Is ``value`` a number of at most PLACEABLE in size?"""
    try:
        return _is_number(value) and abs(float(value)) <= PLACEABLE
    except OverflowError:  # an integer beyond any float
        return False


def _square_images(images: np.ndarray) -> np.ndarray:
    """``images`` as (N, H, W), flat (N, H*H) rows reshaped to squares."""
    images = np.asarray(images)
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ValueError(f"flat images need a square number of pixels, got shape "
                             f"{images.shape}")
        images = images.reshape(len(images), side, side)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W) or (N, H*W) array, got shape "
                         f"{images.shape}")
    return images


def _titles(labels: np.ndarray, count: int, class_names: Sequence[str] | None) -> list[str]:
    """One title per image: its label, or that label's class name."""
    labels = np.asarray(labels)
    if labels.shape != (count,):
        raise ValueError(f"labels must have shape ({count},) to match the images, got "
                         f"{labels.shape}")
    if class_names is None:
        return [str(label) for label in labels]
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 \
            or labels.max() >= len(class_names):
        raise ValueError(f"labels must be integers in [0, {len(class_names)}) to index "
                         f"{len(class_names)} class names, got {labels.dtype} values "
                         f"{labels.min()}..{labels.max()}")
    return [str(class_names[label]) for label in labels]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib Figure on an Agg canvas, importing matplotlib now."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise MissingDependency(f"matplotlib is needed to draw pictures: "
                                f"pip install 'gpunet[plots]' ({err})") from err
    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def write_picture(figure: Figure, destination: Path, format: str | None = None) -> Path:
    """Write ``figure`` to ``destination`` atomically, in ``format`` (default: the
    one its suffix names)."""
    with replacing(destination) as file:
        figure.savefig(file, format=format or picture_format(destination))
    return destination


def write_png(figure: Figure, destination: Path) -> Path:
    """``write_picture`` in PNG, whatever the suffix."""
    return write_picture(figure, destination, "png")


def _destination(path: str | os.PathLike) -> Path:
    """``path``, checked before anything is drawn: a file in a folder that exists,
    named with a picture suffix."""
    destination = writable(path)
    picture_format(destination)
    return destination

"""A run's files in its output folder: the figures, results.json and results.md.

A figure is only ever beside the results it was drawn from: one that the new
results cannot back (nothing of its kind measured, or no matplotlib to draw
it) is removed, not left over from an earlier run into the same folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..plots import MissingDependency
from . import report
from .figures import bandwidth_figure, throughput_figure

FIGURES = {"throughput.png": throughput_figure, "bandwidth.png": bandwidth_figure}
FILES = ("results.json", "results.md", *FIGURES)


def write_outputs(measured: dict[str, Any], out: Path,
                  say: Callable[[str], None] = print) -> list[Path]:
    """Write the figures the results back, then results.json and results.md,
    into ``out`` (created if missing), and say what their marks mean; returns
    the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        drawn = [draw(measured["results"], out / name) for name, draw in FIGURES.items()]
    except MissingDependency as exc:
        drawn = []
        measured["skipped"].append(f"figures: {exc}")
    for name in FIGURES:
        stale = out / name
        if stale not in drawn and stale.exists():
            stale.unlink()
            say(f"removed {stale}: an earlier run's figure, which these results do not back")
    written = [*filter(None, drawn), report.write_json(measured, out / "results.json"),
               report.write_markdown(measured, out / "results.md")]
    for note in report.notes(measured):
        say(note)
    return written

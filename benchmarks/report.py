"""The run's results as JSON (everything) and Markdown (the tables a person reads)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpunet.atomic import replacing


def write_json(measured: dict[str, Any], path: Path) -> Path:
    with replacing(path) as file:
        file.write(json.dumps(measured, indent=1).encode())
    return path


def write_markdown(measured: dict[str, Any], path: Path) -> Path:
    with replacing(path) as file:
        file.write(markdown(measured).encode())
    return path


def markdown(measured: dict[str, Any]) -> str:
    env = measured["environment"]
    cuda = env.get("cuda") or {}
    lines = ["# gpunet benchmark", "",
             f"- machine: {env['processor']}, {env['cores']} cores, "
             f"{(env['memory_bytes'] or 0) / 2 ** 30:.0f} GiB; {env['os']}",
             f"- GPU: {cuda.get('name') or 'none (' + str(cuda.get('reason')) + ')'}",
             f"- Python {env['python']}, gpunet {env['gpunet']}, NumPy {env['numpy']}, "
             f"CuPy {env['cupy']}, PyTorch {env['torch']}", ""]
    lines += _training_table([r for r in measured["results"] if r.get("case") == "train"])
    lines += _op_table([r for r in measured["results"] if r.get("case") == "op"])
    if measured.get("skipped"):
        lines += ["## Not measured", ""] + [f"- {reason}" for reason in measured["skipped"]] + [""]
    return "\n".join(lines)


def _training_table(records: list[dict[str, Any]]) -> list[str]:
    if not records:
        return []
    rows: dict[tuple, dict[str, Any]] = {}
    for r in records:
        rows.setdefault((r["model"], r["batch_size"], r["peer"], r["backend"]), {})[r["what"]] = r
    lines = ["## Training throughput (samples/s, median)", "",
             "| model | batch | peer | backend | step | epoch | spread (q1..q3 of epoch s) "
             "| step memory | roofline |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (model, batch, peer, backend), by_what in sorted(rows.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2], kv[0][3])):
        step, epoch = by_what.get("step"), by_what.get("epoch")
        memory = _memory(epoch or step or {})
        roof = (step or {}).get("roofline")
        spread = (f"{epoch['q1_s']:.3g}..{epoch['q3_s']:.3g}" if epoch and "q1_s" in epoch
                  else "extrapolated" if epoch else "")
        bound = f"{roof['fraction_of_roofline']:.1%} ({roof['limit']})" if roof else ""
        lines.append(f"| {model} | {batch} | {peer} | {backend} | {_rate(step)} | {_rate(epoch)} "
                     f"| {spread} | {memory} | {bound} |")
    return lines + [""]


def _op_table(records: list[dict[str, Any]]) -> list[str]:
    if not records:
        return []
    pairs: dict[tuple, dict[str, Any]] = {}
    for r in records:
        pairs.setdefault((r["op"], r["backend"], r["size"]), {})[r["variant"]] = r
    lines = ["## Operations (achieved GB/s, median)", "",
             "| op | backend | elements | kernel GB/s | expression GB/s | kernel speed-up |",
             "| --- | --- | --- | --- | --- | --- |"]
    for (op, backend, size), variants in pairs.items():
        kernel, expression = variants.get("kernel"), variants.get("expression")
        speedup = (f"{expression['median_s'] / kernel['median_s']:.2f}x"
                   if kernel and expression else "")
        lines.append(f"| {op} | {backend} | {size:.0e} | {_gbps(kernel)} | {_gbps(expression)} "
                     f"| {speedup} |")
    return lines + [""]


def _rate(record: dict[str, Any] | None) -> str:
    return f"{record['samples_per_s']:,.0f}" if record else ""


def _gbps(record: dict[str, Any] | None) -> str:
    return f"{record['gb_per_s']:.2f}" if record else ""


def _memory(record: dict[str, Any]) -> str:
    """The step's memory and how it was measured, e.g. '1.25 MiB (tracemalloc peak)'."""
    n = record.get("step_memory_bytes")
    return "" if n is None else f"{n / 2 ** 20:.2f} MiB ({record['step_memory_measure']})"

"""The CuPy backend's speed targets, checked against a run's results.json.

    python -m gpunet.bench.targets bench-out/results.json

On the GPU: the deep model at batch 128 trains 600,000 samples a second or
more (a 60,000-sample epoch in 100 ms) with the data on the device, and each
kernel is at least as fast as the array expression it replaces at 1e6
elements and above, where that expression takes more than one launch (a
one-launch expression runs as fast as the kernel: their ratio is 1 plus noise,
so it is shown, not judged). Prints one line per target and exits 1 if any is
missed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .ops import ONE_LAUNCH_EXPRESSIONS

EPOCH_SAMPLES_PER_S = 600_000  # deep model, batch 128, cupy
OP_MIN_SIZE = 1_000_000


def check(measured: dict[str, Any]) -> list[tuple[str, str]]:
    """(verdict, what) per target: verdict is 'pass', 'FAIL' or 'not measured'."""
    results = measured["results"]
    epochs = [r for r in results if r.get("case") == "train" and r["what"] == "epoch"
              and (r["peer"], r["backend"], r["model"], r["batch_size"]) == ("gpunet", "cupy", "deep", 128)]
    lines = []
    if epochs:
        rate = epochs[0]["samples_per_s"]
        lines.append(("pass" if rate >= EPOCH_SAMPLES_PER_S else "FAIL",
                      f"deep model, batch 128, on cupy: {rate:,.0f} samples/s, a 60,000-sample "
                      f"epoch in {60_000 / rate * 1000:.0f} ms (target 100 ms)"))
    else:
        lines.append(("not measured", "deep model, batch 128, on cupy (no such epoch in the run)"))
    ops: dict[tuple[str, int], dict[str, float]] = {}
    for r in results:
        if r.get("case") == "op" and r["backend"] == "cupy" and r["size"] >= OP_MIN_SIZE:
            ops.setdefault((r["op"], r["size"]), {})[r["variant"]] = r["median_s"]
    for (op, size), times in sorted(ops.items()):
        if {"kernel", "expression"} <= times.keys():
            ratio = times["expression"] / times["kernel"]
            verdict = ("no target" if op in ONE_LAUNCH_EXPRESSIONS
                       else "pass" if ratio >= 1 else "FAIL")
            lines.append((verdict, f"{op} at {size:.0e} elements: kernel {ratio:.2f}x the "
                                   f"expression's speed"))
    if not ops:
        lines.append(("not measured", "kernels against expressions on cupy at 1e6 elements or more"))
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: " + __doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        measured = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read benchmark results {path}: {exc}", file=sys.stderr)
        return 2
    lines = check(measured)
    for verdict, what in lines:
        print(f"{verdict:>12}  {what}")
    return 1 if any(verdict == "FAIL" for verdict, _ in lines) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The CuPy backend's speed targets, checked against a run's results.json.

    python -m gpunet.bench.targets bench-out/results.json

On the GPU, the deep model at batch 128 with the data on the device: the
planned step trains a 60,000-sample epoch in 60 ms or less (1,000,000 samples
a second), its CUDA graph replay in 15 ms or less (4,000,000 samples a second)
and at least 3x as fast as PyTorch eager on the same GPU in the same run (and,
shown without a target, against PyTorch's own CUDA graph of the step); and
each kernel is at least as fast as the array expression it replaces at 1e6
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

EPOCH_TARGETS = {"gpunet": 1_000_000, "gpunet graph": 4_000_000}  # samples/s, deep, batch 128
GRAPH_OVER_TORCH = 3.0
OP_MIN_SIZE = 1_000_000


def check(measured: dict[str, Any]) -> list[tuple[str, str]]:
    """(verdict, what) per target: verdict is 'pass', 'FAIL' or 'not measured'."""
    results = measured["results"]
    lines = []
    for peer, target in EPOCH_TARGETS.items():
        rate = _deep_epoch(results, peer, "cupy")
        what = f"{peer}, deep model, batch 128, on cupy"
        if rate is None:
            lines.append(("not measured", f"{what} (no such epoch in the run)"))
        else:
            lines.append(("pass" if rate >= target else "FAIL",
                          f"{what}: {rate:,.0f} samples/s, a 60,000-sample epoch in "
                          f"{60_000 / rate * 1000:.0f} ms (target {60_000 / target * 1000:.0f} ms)"))
    graph, torch = _deep_epoch(results, "gpunet graph", "cupy"), _deep_epoch(results, "torch", "cuda")
    what = "gpunet graph against PyTorch eager, deep model, batch 128, on the GPU"
    if graph is None or torch is None:
        lines.append(("not measured", f"{what} (both are needed in the run)"))
    else:
        lines.append(("pass" if graph >= GRAPH_OVER_TORCH * torch else "FAIL",
                      f"{what}: {graph / torch:.1f}x (target {GRAPH_OVER_TORCH:.0f}x)"))
    torch_graph = _deep_epoch(results, "torch graph", "cuda")
    if graph is not None and torch_graph is not None:
        lines.append(("no target", f"gpunet graph against PyTorch's CUDA graph, deep model, "
                                   f"batch 128: {graph / torch_graph:.1f}x"))
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


def _deep_epoch(results: list[dict], peer: str, backend: str) -> float | None:
    """Samples/s of ``peer``'s deep-model epoch at batch 128 on ``backend``, if measured."""
    return next((r["samples_per_s"] for r in results
                 if r.get("case") == "train" and r["what"] == "epoch"
                 and (r["peer"], r["backend"], r["model"], r["batch_size"])
                 == (peer, backend, "deep", 128)), None)


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

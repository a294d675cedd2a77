"""The CuPy backend's speed targets, checked against a run's results.json.

    python -m gpunet.bench.targets bench-out/results.json

On the GPU, the deep model at batch 128 with the data on the device: the
planned step trains a 60,000-sample epoch in 60 ms or less (1,000,000 samples
a second), its CUDA graph replay in 15 ms or less (4,000,000 samples a second)
and at least 3x as fast as PyTorch eager on the same GPU in the same run (and,
shown without a target, against PyTorch's own CUDA graph of the step, and the
moonshot: the graph's epoch in 10 ms or less and at least 5x PyTorch eager);
and each kernel is at least as fast as the array expression it replaces at 1e6
elements and above, where that expression takes more than one launch (a
one-launch expression runs as fast as the kernel: their ratio is 1 plus noise,
so it is shown, not judged). Prints one line per target and exits 1 if any is
missed.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .ops import ONE_LAUNCH_EXPRESSIONS

EPOCH_SAMPLES = 60_000
EPOCH_TARGETS = {"gpunet": 1_000_000, "gpunet graph": 4_000_000}  # samples/s, deep, batch 128
GRAPH_OVER_TORCH = 3.0
MOONSHOT_EPOCH_MS, MOONSHOT_OVER_TORCH = 10.0, 5.0
OP_MIN_SIZE = 1_000_000


@dataclass(frozen=True)
class Target:
    """One target's verdict ('pass', 'FAIL', 'not measured', 'no target' or
    'moonshot'), its line, and the figures behind it. ``met`` is None where
    nothing is judged; ``required`` targets are gpunet's own, which a run on
    CuPy must measure (the PyTorch comparisons need PyTorch with CUDA)."""
    verdict: str
    what: str
    measured: float | None = None
    limit: float | None = None
    unit: str = ""
    met: bool | None = None
    required: bool = False

    @property
    def line(self) -> str:
        return f"{self.verdict:>12}  {self.what}"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def check(measured: dict[str, Any]) -> list[Target]:
    """Every target, judged on ``measured`` (a results.json's content)."""
    results = measured["results"]
    targets = [_epoch_target(_deep_epoch(results, peer, "cupy"), peer, rate)
               for peer, rate in EPOCH_TARGETS.items()]
    graph = _deep_epoch(results, "gpunet graph", "cupy")
    torch = _deep_epoch(results, "torch", "cuda")
    what = "gpunet graph against PyTorch eager, deep model, batch 128, on the GPU"
    if graph is None or torch is None:
        targets.append(Target("not measured", f"{what} (both are needed in the run)"))
    else:
        ratio = graph / torch
        targets.append(_judged(f"{what}: {ratio:.1f}x (target {GRAPH_OVER_TORCH:.0f}x)",
                               ratio, GRAPH_OVER_TORCH, "x PyTorch eager, at least",
                               ratio >= GRAPH_OVER_TORCH, required=False))
        epoch_ms = EPOCH_SAMPLES / graph * 1000
        met = epoch_ms <= MOONSHOT_EPOCH_MS and ratio >= MOONSHOT_OVER_TORCH
        targets.append(Target(
            "moonshot", f"gpunet graph: a {epoch_ms:.1f} ms epoch and {ratio:.1f}x PyTorch eager "
                        f"(moonshot {MOONSHOT_EPOCH_MS:.0f} ms and {MOONSHOT_OVER_TORCH:.0f}x): "
                        f"{'met' if met else 'not yet'}",
            epoch_ms, MOONSHOT_EPOCH_MS, "ms an epoch, at most", met))
    torch_graph = _deep_epoch(results, "torch graph", "cuda")
    if graph is not None and torch_graph is not None:
        ratio = graph / torch_graph
        targets.append(Target("no target", "gpunet graph against PyTorch's CUDA graph, deep "
                                           f"model, batch 128: {ratio:.1f}x",
                              ratio, unit="x PyTorch's CUDA graph"))
    ops: dict[tuple[str, int], dict[str, float]] = {}
    for r in results:
        if r.get("case") == "op" and r["backend"] == "cupy" and r["size"] >= OP_MIN_SIZE:
            ops.setdefault((r["op"], r["size"]), {})[r["variant"]] = r["median_s"]
    for (op, size), times in sorted(ops.items()):
        if {"kernel", "expression"} <= times.keys():
            ratio = times["expression"] / times["kernel"]
            what = f"{op} at {size:.0e} elements: kernel {ratio:.2f}x the expression's speed"
            unit = "x the expression's speed, at least"
            targets.append(Target("no target", what, ratio, unit=unit)
                           if op in ONE_LAUNCH_EXPRESSIONS
                           else _judged(what, ratio, 1.0, unit, ratio >= 1, required=True))
    if not ops:
        targets.append(Target("not measured", "kernels against expressions on cupy at 1e6 "
                                              "elements or more", required=True))
    return targets


def _epoch_target(rate: float | None, peer: str, target: float) -> Target:
    """``peer``'s deep-model epoch at batch 128 on CuPy against ``target`` samples/s."""
    what = f"{peer}, deep model, batch 128, on cupy"
    if rate is None:
        return Target("not measured", f"{what} (no such epoch in the run)", required=True)
    epoch_ms, limit_ms = EPOCH_SAMPLES / rate * 1000, EPOCH_SAMPLES / target * 1000
    return _judged(f"{what}: {rate:,.0f} samples/s, a 60,000-sample epoch in {epoch_ms:.0f} ms "
                   f"(target {limit_ms:.0f} ms)", epoch_ms, limit_ms, "ms an epoch, at most",
                   rate >= target, required=True)


def _judged(what: str, measured: float, limit: float, unit: str, met: bool,
            required: bool) -> Target:
    return Target("pass" if met else "FAIL", what, measured, limit, unit, met, required)


def _deep_epoch(results: list[dict], peer: str, backend: str) -> float | None:
    """Samples/s of ``peer``'s deep-model epoch at batch 128 on ``backend``, if
    measured; a "gpunet graph" epoch whose steps did not run as a graph (its
    capture fell back: ``step_path``) is not a graph's and counts as not measured."""
    return next((r["samples_per_s"] for r in results
                 if r.get("case") == "train" and r["what"] == "epoch"
                 and (r["peer"], r["backend"], r["model"], r["batch_size"])
                 == (peer, backend, "deep", 128)
                 and (peer != "gpunet graph" or r.get("step_path", "graph").startswith("graph"))),
                None)


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
    targets = check(measured)
    for target in targets:
        print(target.line)
    return 1 if any(target.verdict == "FAIL" for target in targets) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a CuPy epoch's time goes: each kernel's device time (torch.profiler's
CUPTI tracing, which sees CuPy's launches and graph nodes too), epoch wall times,
and the eager epoch's host work (cProfile).

    PYTHONPATH=. python -m benchmarks.gpu_kernel_profile OUT [MODEL:BATCH[:parts] ...]

(by default the deep and wide models at batch 128 and 1024). A case ending in
":parts" runs a recorded step's stages past the first as their parts, not the row
chain (block_kernels/rows.py): the kernels it replaces, to compare in one run.
"""
from __future__ import annotations

import contextlib
import cProfile
import gzip
import io
import pstats
import shutil
import sys
import time
from typing import Any
from unittest import mock

import gpunet
from gpunet.bench.trainers import GpunetTrainer, mnist_like

CASES = (("deep", 128, False), ("deep", 1024, False), ("wide", 128, False), ("wide", 1024, False))


def main(out: str, cases: tuple[tuple[str, int, bool], ...] = CASES) -> None:
    from torch.profiler import ProfilerActivity, profile

    from gpunet.backend.cupy_backend import CupyBackend
    backend = gpunet.get_backend("cupy")
    x, labels = mnist_like(60_000)
    for model, batch, parts in cases:
        for graph in ("off", "on"):
            with mock.patch.object(CupyBackend, "_row_chain", lambda *args: False) if parts \
                    else contextlib.nullcontext():
                trainer = GpunetTrainer(model, batch, x, labels, backend, graph=graph)
                epoch_of(trainer, out, model, batch, graph + (" parts" if parts else ""),
                         profile, ProfilerActivity)
    trainer = GpunetTrainer("deep", 128, x, labels, backend, graph="off")
    trainer.epoch()
    trainer.synchronize()
    profiler = cProfile.Profile()
    profiler.enable()
    trainer.epoch()
    trainer.synchronize()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
    print(text.getvalue())


def epoch_of(trainer: GpunetTrainer, out: str, model: str, batch: int, graph: str,
             profile: Any, activity: Any) -> None:
    """Two epochs to warm up, three timed, one profiled (its kernels printed; the
    deep model's at batch 128 also saved as a trace in ``out``)."""
    for _ in range(2):
        trainer.epoch()
    trainer.synchronize()
    walls = []
    for _ in range(3):
        start = time.perf_counter()
        trainer.epoch()
        trainer.synchronize()
        walls.append(round((time.perf_counter() - start) * 1e3, 1))
    print(f"### {model} batch {batch} graph {graph}: {trainer.step_path}; "
          f"epochs {walls} ms", flush=True)
    with profile(activities=[activity.CPU, activity.CUDA]) as prof:
        trainer.epoch()
        trainer.synchronize()
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=16,
                                    max_name_column_width=80), flush=True)
    if model == "deep" and batch == 128:
        path = f"{out}/trace-{model}-{batch}-{graph.replace(' ', '-')}.json"
        prof.export_chrome_trace(path)
        with open(path, "rb") as f, gzip.open(path + ".gz", "wb") as g:
            shutil.copyfileobj(f, g)


def case(text: str) -> tuple[str, int, bool]:
    """MODEL:BATCH[:parts] as (model, batch, parts)."""
    model, batch, *parts = text.split(":")
    return model, int(batch), parts == ["parts"]


if __name__ == "__main__":
    main(sys.argv[1], tuple(case(c) for c in sys.argv[2:]) or CASES)

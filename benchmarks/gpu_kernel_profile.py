"""Where a CuPy epoch's time goes: each kernel's device time (torch.profiler's
CUPTI tracing, which sees CuPy's launches and graph nodes too), epoch wall times,
and the eager epoch's host work (cProfile).

    PYTHONPATH=. python -m benchmarks.gpu_kernel_profile OUT [MODEL:BATCH ...]

(by default the deep and wide models at batch 128 and 1024).
"""
from __future__ import annotations

import cProfile
import gzip
import io
import pstats
import shutil
import sys
import time

import gpunet
from gpunet.bench.trainers import GpunetTrainer, mnist_like

CASES = (("deep", 128), ("deep", 1024), ("wide", 128), ("wide", 1024))


def main(out: str, cases: tuple[tuple[str, int], ...] = CASES) -> None:
    from torch.profiler import ProfilerActivity, profile
    backend = gpunet.get_backend("cupy")
    x, labels = mnist_like(60_000)
    for model, batch in cases:
        for graph in ("off", "on"):
            trainer = GpunetTrainer(model, batch, x, labels, backend, graph=graph)
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
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                trainer.epoch()
                trainer.synchronize()
            print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=16,
                                            max_name_column_width=80), flush=True)
            if model == "deep" and batch == 128:
                path = f"{out}/trace-{model}-{batch}-{graph}.json"
                prof.export_chrome_trace(path)
                with open(path, "rb") as f, gzip.open(path + ".gz", "wb") as g:
                    shutil.copyfileobj(f, g)
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


if __name__ == "__main__":
    main(sys.argv[1], tuple((m, int(b)) for m, b in (c.split(":") for c in sys.argv[2:]))
         or CASES)

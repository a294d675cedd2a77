"""Where a CuPy epoch's time goes: each kernel's device time (torch.profiler's
CUPTI tracing, which sees CuPy's launches and graph nodes too), epoch wall times,
and the host's work in an epoch, bound and replayed as a graph (cProfile).

    PYTHONPATH=. python -m benchmarks.gpu_kernel_profile OUT [MODEL:BATCH[:parts][:cold][:narrow] ...]

(by default the deep and wide models at batch 128 and 1024). A case with ":parts"
runs a recorded step's stages past the first as their parts, not the row chain
(block_kernels/rows.py); with ":cold", a captured step does not read the next
step's rows ahead (block_kernels/ahead.py); with ":narrow", a capture has one side
stream a kind of work aside, not one for each product and column sum
(side_stream.py): what each replaced, to compare in one run.
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
from typing import Any, NamedTuple
from unittest import mock

import gpunet
from gpunet.bench.trainers import GpunetTrainer, mnist_like

from .step_timeline import kernels, read_trace, report, timeline


class Case(NamedTuple):
    model: str
    batch: int
    parts: bool = False  # the stages past the first as their parts, not the row chain
    cold: bool = False  # no reading ahead: each step's first product reads memory
    narrow: bool = False  # one side stream a kind: the products aside one after the other


CASES = (Case("deep", 128), Case("deep", 1024), Case("wide", 128), Case("wide", 1024))
# What each switch of a case turns off: a CupyBackend attribute, and what stands in for it.
SWITCHES = {"parts": ("_row_chain", lambda *args: False),
            "cold": ("read_ahead", lambda *args: None),
            "narrow": ("SIDE_STREAMS", (1, 1, 1))}


def main(out: str, cases: tuple[Case, ...] = CASES) -> None:
    from torch.profiler import ProfilerActivity, profile

    from gpunet.backend.cupy_backend import CupyBackend
    backend = gpunet.get_backend("cupy")
    x, labels = mnist_like(60_000)
    for run in cases:
        switches = [name for name in SWITCHES if getattr(run, name)]
        for graph in ("off", "on"):
            with contextlib.ExitStack() as stack:
                for name in switches:
                    stack.enter_context(mock.patch.object(CupyBackend, *SWITCHES[name]))
                trainer = GpunetTrainer(run.model, run.batch, x, labels, backend, graph=graph)
                epoch_of(trainer, out, run.model, run.batch, " ".join([graph, *switches]),
                         profile, ProfilerActivity)
    for graph in ("off", "on"):
        host_work(GpunetTrainer("deep", 128, x, labels, backend, graph=graph), graph)


def host_work(trainer: GpunetTrainer, graph: str) -> None:
    """The host's work in an epoch after one to warm up (cProfile, by time in each
    function): the bound step's launches, or the graph's launches and the loop
    around them, which the device's step must outlast for the host to keep up."""
    trainer.epoch()
    trainer.synchronize()
    profiler = cProfile.Profile()
    profiler.enable()
    trainer.epoch()
    trainer.synchronize()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
    print(f"### host work, deep batch 128 graph {graph}: {trainer.step_path}\n{text.getvalue()}",
          flush=True)

def epoch_of(trainer: GpunetTrainer, out: str, model: str, batch: int, graph: str,
             profile: Any, activity: Any) -> None:
    """Two epochs to warm up, three timed, one profiled (its kernels printed; the
    deep model's at batch 128 also saved as a trace in ``out``, and its replayed
    step's timeline printed: step_timeline.py)."""
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
        print(f"### timeline, {model} batch {batch} graph {graph}\n"
              f"{report(timeline(kernels(read_trace(path))))}", flush=True)


def case(text: str) -> Case:
    """MODEL:BATCH[:parts][:cold][:narrow] as a Case; ValueError for a switch not in SWITCHES."""
    model, batch, *switches = text.split(":")
    unknown = set(switches) - set(SWITCHES)
    if unknown:
        raise ValueError(f"case {text!r}: no switch {', '.join(sorted(unknown))} "
                         f"(there are {', '.join(SWITCHES)})")
    return Case(model, int(batch), **{name: True for name in switches})


if __name__ == "__main__":
    main(sys.argv[1], tuple(case(c) for c in sys.argv[2:]) or CASES)

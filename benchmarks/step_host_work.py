"""The host's Python work per planned step, with CuPy's calls made no-ops.

    python -m benchmarks.step_host_work [--repeats 21] [--steps 200]

Loads ``CupyBackend`` over a stand-in ``cupy`` whose arrays are NumPy's and
whose kernels, products and cuBLAS calls do nothing, builds the deep model's
one-process planned step (batch 128, softmax cross-entropy, Momentum: a
``StepGraph`` run without capture, as ``--graph off`` runs it: bound once,
``CupyBackend.bind``, each step then a loop of its launches, here no-ops) on
it, and prints the Python function calls one step makes (``sys.setprofile``'s "call"
events, which issue #23's limit of 60 counts, and its "c_call" events, calls
into C; the stand-in's no-ops not counted) and its microseconds: the median,
min and max over ``--repeats`` repeats of ``--steps`` steps each. The
machine's load moves the microseconds; to compare two checkouts, run them
alternately.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

BATCH = 128


class NoOpKernel:
    """A ``cupy.ElementwiseKernel`` that launches nothing, by its name in ``KERNELS``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Any:
        return args[-1]


def stand_in_cupy() -> types.ModuleType:
    """A ``cupy`` of NumPy's arrays whose products do nothing."""
    cupy = types.ModuleType("cupy")
    for name in ("ndarray", "empty", "zeros", "zeros_like", "empty_like", "asarray", "arange",
                 "full", "ones", "add", "take", "ascontiguousarray"):
        setattr(cupy, name, getattr(np, name))
    cupy.matmul = lambda a, b, out=None: out
    cupy.multiply = lambda a, b, out=None: out
    cupy.cuda = types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=0))
    return cupy


class NoOpCublas:
    """``captured_cublas()``'s calls, doing nothing."""

    def prepare(self, stream: Any) -> None:
        pass

    def gemm(self, a: Any, b: Any, out: Any, bound: list | None = None) -> None:
        no_op(bound=bound)


def no_op(*args: Any, bound: list | None = None, **kwargs: Any) -> None:
    """A kernel's launch, doing nothing; with ``bound``, a BoundLaunch of it
    (of no arguments: binding them is not a step's work) appended."""
    from gpunet.backend.bound_launch import BoundLaunch

    if bound is not None:
        bound.append(BoundLaunch(no_op, 0, (1,), (1,), ()))


def stub_backend() -> Any:
    """``CupyBackend`` loaded over ``stand_in_cupy()``, its kernels ``NoOpKernel``s."""
    from benchmarks.backend_files import CUPY_BACKEND_FILES, fresh_backend_modules

    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = stand_in_cupy()
    try:
        modules = fresh_backend_modules(*CUPY_BACKEND_FILES)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    stubs = {"elementwise": functools.cache(NoOpKernel),  # not kernels.py's cache of real ones
             "block_kernels": types.SimpleNamespace(dense_backward=no_op, dense_rows=no_op,
                                                    gemm=no_op, dense_softmax_cross_entropy=no_op,
                                                    launch_grid=no_op, read_ahead=no_op),
             "captured_cublas": functools.cache(NoOpCublas)}
    for module in modules[1:]:  # CupyBackend's own, not cublas_capture's
        for name, stub in stubs.items():
            if hasattr(module, name):
                setattr(module, name, stub)
    backend = modules[-1].CupyBackend()
    backend.restart(0)
    return backend


@contextlib.contextmanager
def owning_numpy_arrays(backend: Any) -> Iterator[None]:
    """``backend_of`` a NumPy array is ``backend`` (the optimizer's update goes to it) inside."""
    from gpunet.backend import _by_array_type

    saved = _by_array_type.get(np.ndarray)
    _by_array_type[np.ndarray] = backend
    try:
        yield
    finally:
        if saved is None:
            del _by_array_type[np.ndarray]
        else:
            _by_array_type[np.ndarray] = saved


def planned_step(backend: Any) -> tuple[Any, Any, slice]:
    """(the deep model, its one-process planned step on ``backend``, which holds
    it weakly, warmed up, and the rows of the step to time)."""
    import gpunet
    from gpunet.planning import plan_step
    from gpunet.planning.graph import StepGraph

    gpunet.seed(0)
    model = gpunet.mnist_model("deep", backend=backend)
    gpunet.set_train(model, True)
    optimizer = gpunet.Momentum(0.01, 0.99)
    plan = plan_step(model, gpunet.SoftmaxCrossEntropy(), optimizer, backend, BATCH)
    step = StepGraph(plan, ())
    step.start_epoch(np.zeros((2 * BATCH, 784), np.float32), np.zeros((2 * BATCH, 10), np.float32),
                     None)
    rows = slice(0, BATCH)
    for _ in range(3):  # the warm-up through the plan (the optimizer's state), the kernel cache
        step.step(rows)
    return model, step, rows


def count_calls(step: Any, rows: slice) -> dict[str, int]:
    """{"call": Python calls, "c_call": C calls} of one ``step.step(rows)``; the
    stand-in's own no-ops are not counted, as CuPy's compiled kernels and
    products fire no profile events."""
    counts = {"call": 0, "c_call": 0}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event in counts and frame.f_code.co_filename != __file__:
            counts[event] += 1

    sys.setprofile(profile)
    try:
        step.step(rows)
    finally:
        sys.setprofile(None)
    counts["call"] -= 1  # step.step itself is the step, not a call it makes
    return counts


def microseconds(step: Any, rows: slice, steps: int) -> float:
    """The mean microseconds of one ``step.step(rows)`` over ``steps`` steps."""
    run = step.step
    start = time.perf_counter()
    for _ in range(steps):
        run(rows)
    return (time.perf_counter() - start) / steps * 1e6


def measure(repeats: int, steps: int) -> dict[str, Any]:
    """Calls per step and µs per step (median, min, max over ``repeats``)."""
    backend = stub_backend()
    with owning_numpy_arrays(backend):
        model, step, rows = planned_step(backend)
        times = [microseconds(step, rows, steps) for _ in range(repeats)]
        calls = count_calls(step, rows)
    return {**calls, "median_us": statistics.median(times), "min_us": min(times),
            "max_us": max(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    figures = measure(args.repeats, args.steps)
    print(f"deep model, batch {BATCH}, CuPy stubbed: {figures['call']} Python calls and "
          f"{figures['c_call']} C calls per step; {figures['median_us']:.1f} µs per step "
          f"(median of {args.repeats}; min {figures['min_us']:.1f}, max {figures['max_us']:.1f})")


if __name__ == "__main__":
    main()

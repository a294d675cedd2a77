"""Each product of the deep model's planned step, by each product path gpunet has on
CuPy: the device time a call takes (torch.profiler's CUPTI, kernels and split-K sums
together), for the next design of the step's products.

    PYTHONPATH=. python -m benchmarks.gpu_products [--batch-sizes 128 1024]

Paths: "cupy.matmul" (eager layers), "cuBLAS" (a planned or graph step:
``cublas_capture.py``, one plain call) and "fallback GEMM" (``block_kernels.gemm``).
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

import gpunet

PATHS = ("cupy.matmul", "cuBLAS", "fallback GEMM")
CALLS = 50


def products(batch: int) -> dict[str, tuple[tuple[int, int], tuple[int, int], bool, bool]]:
    """The deep model's (784 -> 30 -> 10 -> 10) products at ``batch``: name ->
    (a's shape, b's shape, trans_a, trans_b), a and b as a step stores them."""
    return {"x W1^T": ((batch, 784), (30, 784), False, True),
            "y1 W2^T": ((batch, 30), (10, 30), False, True),
            "y2 W3^T": ((batch, 10), (10, 10), False, True),
            "dz3^T y2": ((batch, 10), (batch, 10), True, False),
            "dz3 W3": ((batch, 10), (10, 10), False, False),
            "dz2^T y1": ((batch, 10), (batch, 30), True, False),
            "dz2 W2": ((batch, 10), (10, 30), False, False),
            "dz1^T x": ((batch, 30), (batch, 784), True, False)}


def device_us(run: Callable[[], None], synchronize: Callable[[], None]) -> float:
    """Microseconds of device time per call of ``run``, over CALLS calls."""
    from torch.profiler import ProfilerActivity, profile
    run()
    synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(CALLS):
            run()
        synchronize()
    return sum(event.self_device_time_total for event in prof.key_averages()) / CALLS


def on_path(backend: Any, path: str, a: Any, b: Any, out: Any, trans_a: bool,
            trans_b: bool) -> Callable[[], None]:
    """One product by ``path``."""
    def run() -> None:
        backend.captured_gemm = None if path == "cupy.matmul" else path
        try:
            backend.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b)
        finally:
            backend.captured_gemm = None
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    args = parser.parse_args()
    import cupy

    from gpunet.backend.cublas_capture import captured_cublas
    backend = gpunet.get_backend("cupy")
    captured_cublas().prepare(cupy.cuda.get_current_stream())
    rng = np.random.default_rng(0)
    print(f"{'product':<10} {'batch':>5} " + " ".join(f"{p:>14}" for p in PATHS)
          + "   (µs of device time a call)")
    for batch in args.batch_sizes:
        totals = dict.fromkeys(PATHS, 0.0)
        for name, (a_shape, b_shape, trans_a, trans_b) in products(batch).items():
            a, b = (cupy.asarray(rng.standard_normal(s, np.float32)) for s in (a_shape, b_shape))
            m = a_shape[1] if trans_a else a_shape[0]
            n = b_shape[0] if trans_b else b_shape[1]
            out = cupy.empty((m, n), np.float32)
            times = {path: device_us(on_path(backend, path, a, b, out, trans_a, trans_b),
                                     backend.synchronize) for path in PATHS}
            for path in PATHS:
                totals[path] += times[path]
            print(f"{name:<10} {batch:>5} " + " ".join(f"{times[p]:>14.2f}" for p in PATHS),
                  flush=True)
        print(f"{'all':<10} {batch:>5} " + " ".join(f"{totals[p]:>14.2f}" for p in PATHS))


if __name__ == "__main__":
    main()

"""Each product of a preset model's planned step, by each product path gpunet has on
CuPy: the device time a call takes (torch.profiler's CUPTI, kernels and split-K sums
together), for the design of the step's products.

    PYTHONPATH=. python -m benchmarks.gpu_products [--models deep wide]
                                                   [--batch-sizes 128 1024] [--slices]

Paths: "cupy.matmul" (eager layers), "cuBLAS" (``cublas_capture.py``'s one plain
call), "tiled GEMM" (``block_kernels.gemm``, also the fallback where cuBLAS cannot be
captured) and "recorded step" (the one of the two a planned or graph step takes, for
operands that are plain arrays: the first layer's products read the batch's rows,
which ``_tiled`` weighs otherwise; ``gpu_kernel_profile`` shows what the step runs).
With ``--slices``, a second table: the tiled GEMM with each number of slices a
block may split a sum into (``block_kernels.gemm``'s ``sum_slices``), beside
the number ``block_kernels.slices`` picks, to tune that rule on the device.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

import gpunet

PATHS = ("cupy.matmul", "cuBLAS", "tiled GEMM", "recorded step")
CALLS = 50


def products(model: str, batch: int) -> dict[str, tuple[tuple[int, int], tuple[int, int],
                                                     bool, bool]]:
    """Preset ``model``'s products at ``batch``: name -> (a's shape, b's shape,
    trans_a, trans_b), a and b as a step stores them, in its order: each layer's
    y W^T (x for the first input), then, last layer first, but for the first dz
    W, then, last layer first, dz^T y."""
    from gpunet.models import PRESET_MODELS
    linears = [layer for layer in PRESET_MODELS[model].layers if layer["layer"] == "Linear"]
    dims = [linears[0]["input_dim"], *(layer["output_dim"] for layer in linears)]
    name = ["x", *(f"y{i}" for i in range(1, len(dims)))]
    out = {f"{name[i]} W{i + 1}^T": ((batch, dims[i]), (dims[i + 1], dims[i]), False, True)
           for i in range(len(dims) - 1)}
    for i in range(len(dims) - 1, 1, -1):
        out[f"dz{i} W{i}"] = ((batch, dims[i]), (dims[i], dims[i - 1]), False, False)
    for i in range(len(dims) - 1, 0, -1):
        out[f"dz{i}^T {name[i - 1]}"] = ((batch, dims[i]), (batch, dims[i - 1]), True, False)
    return out


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
    from gpunet.backend import block_kernels
    from gpunet.backend.cublas_capture import captured_cublas
    if path == "cuBLAS":
        return lambda: captured_cublas().gemm(a.T if trans_a else a, b.T if trans_b else b, out)
    if path == "tiled GEMM":
        return lambda: block_kernels.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b)

    def run() -> None:
        backend.captured_gemm = None if path == "cupy.matmul" else "cuBLAS"
        try:
            backend.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b)
        finally:
            backend.captured_gemm = None
    return run


def slices_table(models: list[str], batch_sizes: list[int]) -> None:
    """Device µs of a tiled product with each power-of-two slices; * marks the
    fastest, and the last column is what ``block_kernels.slices`` picks."""
    import cupy

    from gpunet.backend import block_kernels
    counts = [1 << i for i in range(block_kernels.SLICES.bit_length())]
    print(f"\n{'model':<5} {'product':<10} {'batch':>5} "
          + " ".join(f"{f'{c} slices':>10}" for c in counts) + "  picked  (tiled GEMM, µs)")
    rng = np.random.default_rng(0)
    for model, batch in ((m, b) for m in models for b in batch_sizes):
        for name, (a_shape, b_shape, trans_a, trans_b) in products(model, batch).items():
            a, b = (cupy.asarray(rng.standard_normal(s, np.float32)) for s in (a_shape, b_shape))
            m, n = a_shape[1] if trans_a else a_shape[0], b_shape[0] if trans_b else b_shape[1]
            out = cupy.empty((m, n), np.float32)
            times = [device_us(lambda c=c: block_kernels.gemm(
                a, b, out, trans_a=trans_a, trans_b=trans_b, sum_slices=c),
                cupy.cuda.get_current_stream().synchronize) for c in counts]
            best = min(times)
            picked = block_kernels.slices(a_shape[0] if trans_a else a_shape[1],
                                          block_kernels.tiles(m, n))
            print(f"{model:<5} {name:<10} {batch:>5} " + " ".join(
                f"{t:>9.2f}{'*' if t == best else ' '}" for t in times) + f"  {picked:>6}",
                flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["deep"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--slices", action="store_true",
                        help="also time the tiled GEMM with each number of slices")
    args = parser.parse_args()
    import cupy

    from gpunet.backend.cublas_capture import captured_cublas
    backend = gpunet.get_backend("cupy")
    captured_cublas().prepare(cupy.cuda.get_current_stream())
    rng = np.random.default_rng(0)
    print(f"{'model':<5} {'product':<10} {'batch':>5} " + " ".join(f"{p:>14}" for p in PATHS)
          + "   (µs of device time a call)")
    for model, batch in ((m, b) for m in args.models for b in args.batch_sizes):
        totals = dict.fromkeys(PATHS, 0.0)
        for name, (a_shape, b_shape, trans_a, trans_b) in products(model, batch).items():
            a, b = (cupy.asarray(rng.standard_normal(s, np.float32)) for s in (a_shape, b_shape))
            m = a_shape[1] if trans_a else a_shape[0]
            n = b_shape[0] if trans_b else b_shape[1]
            out = cupy.empty((m, n), np.float32)
            times = {path: device_us(on_path(backend, path, a, b, out, trans_a, trans_b),
                                     backend.synchronize) for path in PATHS}
            for path in PATHS:
                totals[path] += times[path]
            print(f"{model:<5} {name:<10} {batch:>5} "
                  + " ".join(f"{times[p]:>14.2f}" for p in PATHS), flush=True)
        print(f"{model:<5} {'all':<10} {batch:>5} "
              + " ".join(f"{totals[p]:>14.2f}" for p in PATHS))
    if args.slices:
        slices_table(args.models, args.batch_sizes)


if __name__ == "__main__":
    main()

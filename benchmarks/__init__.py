"""Benchmarks run from the repository root, not installed: ``python -m benchmarks.bench_core``
(samples/s against a plain NumPy script) and ``python -m benchmarks.step_instructions``
(instructions per step, under callgrind).

The harness behind ``gpunet bench`` is ``gpunet.bench``.
"""

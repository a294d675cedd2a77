"""Benchmarks run from the repository root, not installed: ``python -m benchmarks.bench_core``.

The harness behind ``gpunet bench`` is ``gpunet.bench``.
"""

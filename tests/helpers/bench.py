"""Benchmark records for the tests: a fixed environment and train measurements."""
from gpunet.bench.timing import Timing


def environment():
    return {"processor": "cpu", "cores": 2, "memory_bytes": 2 ** 30, "os": "os",
            "load_average": [1.5, 1.0, 0.5], "python": "3", "gpunet": "0", "numpy": "2",
            "cupy": None, "torch": None, "cuda": {"usable": False, "reason": "no GPU"},
            "thread_pools": [{"user_api": "blas", "internal_api": "openblas", "version": "0.3",
                              "threading_layer": "pthreads", "num_threads": 3}]}


def train_record(what, times, **fields):
    record = {"case": "train", "what": what, "peer": "gpunet", "backend": "numpy",
              "model": "deep", "batch_size": 8, "samples": 8, **Timing(times, 1).record(),
              "step_memory_bytes": None, "step_memory_measure": None, **fields}
    return {**record, "samples_per_s": 8 / record["median_s"]}


def measured_with(results):
    return {"environment": environment(), "config": {}, "skipped": [], "results": results}

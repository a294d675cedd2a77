"""Data-parallel training for the tests: the same small run on one process or
on each rank of an MPI launch.

``python -m mpi4py tests/parallel_fit.py OUT.npz [--dtype float64] [--epochs 2]
[--loss xent|sse] [--fail-rank K]``, under mpiexec: every rank trains with
``fit(comm=world())``; rank 0 writes the parameters and history to OUT.npz.
``--fail-rank K``: rank K raises after its first epoch.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import gpunet
from gpunet.distributed import world

SAMPLES, BATCH, FEATURES, CLASSES = 71, 16, 12, 5  # a tail batch of 7: uneven shares


def train(dtype: str = "float64", epochs: int = 2, loss: str = "xent", comm=None,
          fail_rank: int | None = None) -> tuple[np.ndarray, list]:
    """(the trained parameters, the history) of a model with dropout."""
    gpunet.seed(7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, FEATURES)).astype(dtype)
    y = np.eye(CLASSES, dtype=dtype)[rng.integers(0, CLASSES, SAMPLES)]
    backend = gpunet.get_backend("numpy")
    model = gpunet.Sequential([
        gpunet.Linear(FEATURES, 20, dtype=dtype, backend=backend), gpunet.Dropout(0.2),
        gpunet.Tanh(), gpunet.Linear(20, 9, dtype=dtype, backend=backend), gpunet.Dropout(0.3),
        gpunet.Relu(), gpunet.Linear(9, CLASSES, dtype=dtype, backend=backend)])
    objective = gpunet.SoftmaxCrossEntropy() if loss == "xent" else gpunet.SSE()

    def end_of_epoch(stats: gpunet.EpochStats) -> None:
        if comm is not None and comm.rank == fail_rank:
            raise RuntimeError(f"rank {comm.rank} fails on purpose")

    history = gpunet.fit(model, objective, gpunet.Momentum(0.1, 0.9), x, y, epochs=epochs,
                         batch_size=BATCH, test=(x[:30], y[:30]), progress=False,
                         on_epoch_end=end_of_epoch, comm=comm)
    params = np.concatenate([backend.to_numpy(p).ravel() for p in model.params()])
    return params, [(s.loss, s.accuracy, s.test_loss, s.test_accuracy) for s in history]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--loss", default="xent")
    parser.add_argument("--fail-rank", type=int, default=None)
    args = parser.parse_args()
    comm = world()
    params, history = train(args.dtype, args.epochs, args.loss, comm, args.fail_rank)
    if comm.rank == 0:
        np.savez(args.out, params=params, history=np.array(history, float), size=comm.size)


if __name__ == "__main__":
    sys.exit(main())

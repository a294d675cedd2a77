"""Data-parallel training for the tests: the same small run on one process
(``one_process``) or on each rank of an MPI launch (``train_on_ranks``).

``python -m mpi4py tests/helpers/parallel_fit.py OUT.npz [--dtype float64] [--epochs 2]
[--loss xent|sse] [--samples 71] [--backend numpy|cupy] [--seed-by-rank]
[--fail-rank K] [--perturb-rank K]``, under mpiexec (``launch``): every rank trains with
``fit(comm=world())``; rank 0 writes the parameters, the history, how full
batches ran, the number of ranks and how device arrays were reduced to OUT.npz.
``--seed-by-rank``: rank K seeds 7 + K, so only rank 0 starts as one process does.
``--fail-rank K``: rank K raises after its first epoch.
``--perturb-rank K``: rank K moves one weight by a millionth after its first
epoch; each rank then prints the RanksDiverged it gets, and nothing is written.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import threadpoolctl

import gpunet
from gpunet.distributed import RanksDiverged, world
from gpunet.distributed.launch import mpiexec_path

SAMPLES, BATCH, FEATURES, CLASSES = 71, 16, 12, 5  # a tail batch of 7: uneven shares

RUNNER = str(Path(__file__).resolve())
MPIEXEC = mpiexec_path()


def mpi_missing() -> str | None:
    """Why ranks cannot be launched here, or None."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'gpunet[mpi]')"
    return None if MPIEXEC else "no mpiexec beside Python or on PATH (pip install 'gpunet[mpi]')"


def launch(ranks: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m mpi4py ARGS`` on ``ranks`` ranks (an exception on any rank
    aborts them all), each with one BLAS thread: the ranks share the cores.
    TimeoutExpired after ``timeout`` seconds, the ranks ended."""
    from helpers.mpi import AS_ROOT  # here: each rank runs this file as a script, without helpers
    threads = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                      "MKL_NUM_THREADS")}
    command = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL,
                          env={**os.environ, **AS_ROOT, **threads}) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()  # mpiexec ends the ranks, which run in sessions of their own
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def train_on_ranks(ranks: int, out: Path, *options: str) -> dict[str, np.ndarray]:
    """What this runner writes when launched on ``ranks`` ranks with ``options``."""
    done = launch(ranks, RUNNER, str(out), *options)
    assert done.returncode == 0, done.stdout + done.stderr
    with np.load(out) as written:
        return dict(written)


def one_process(**settings) -> tuple[np.ndarray, np.ndarray]:
    """``train(**settings)`` here, with one BLAS thread as each rank has:
    (the parameters, the history as an array)."""
    with threadpoolctl.threadpool_limits(1):
        params, history = train(**settings)
    return params, numbers(history)


def assert_same_run(got: dict[str, np.ndarray], params: np.ndarray, history: np.ndarray,
                    tolerance: float = 1e-12) -> None:
    """The ranks' parameters and history are the one process's, within ``tolerance``."""
    np.testing.assert_allclose(got["params"], params, rtol=tolerance,
                               atol=tolerance * abs(params).max())
    np.testing.assert_allclose(got["history"], history, rtol=tolerance, atol=tolerance)


def train(dtype: str = "float64", epochs: int = 2, loss: str = "xent", comm=None,
          fail_rank: int | None = None, *, samples: int = SAMPLES, backend: str = "numpy",
          seed: int = 7, perturb_rank: int | None = None
          ) -> tuple[np.ndarray, list[gpunet.EpochStats]]:
    """(the trained parameters, the history) of a model with dropout."""
    gpunet.seed(seed)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, FEATURES)).astype(dtype)
    y = np.eye(CLASSES, dtype=dtype)[rng.integers(0, CLASSES, samples)]
    device = gpunet.get_backend(backend)
    model = gpunet.Sequential([
        gpunet.Linear(FEATURES, 20, dtype=dtype, backend=device), gpunet.Dropout(0.2),
        gpunet.Tanh(), gpunet.Linear(20, 9, dtype=dtype, backend=device), gpunet.Dropout(0.3),
        gpunet.Relu(), gpunet.Linear(9, CLASSES, dtype=dtype, backend=device)])
    objective = gpunet.SoftmaxCrossEntropy() if loss == "xent" else gpunet.SSE()
    rank = 0 if comm is None else comm.rank

    def end_of_epoch(stats: gpunet.EpochStats) -> None:
        if stats.epoch == 1 and rank == perturb_rank:
            model.params()[0][0, 0] *= 1 + 1e-6
        if rank == fail_rank:
            raise RuntimeError(f"rank {rank} fails on purpose")

    history = gpunet.fit(model, objective, gpunet.Momentum(0.1, 0.9), x, y, epochs=epochs,
                         batch_size=BATCH, test=(x[:30], y[:30]), progress=False,
                         on_epoch_end=end_of_epoch, comm=comm)
    params = np.concatenate([device.to_numpy(p).ravel() for p in model.params()])
    return params, history


def numbers(history: list[gpunet.EpochStats]) -> np.ndarray:
    """Each epoch's loss, accuracy, test loss and test accuracy."""
    return np.array([(s.loss, s.accuracy, s.test_loss, s.test_accuracy) for s in history])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--loss", default="xent")
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--seed-by-rank", action="store_true")
    parser.add_argument("--fail-rank", type=int, default=None)
    parser.add_argument("--perturb-rank", type=int, default=None)
    args = parser.parse_args()
    comm = world()
    try:
        params, history = train(args.dtype, args.epochs, args.loss, comm, args.fail_rank,
                                samples=args.samples, backend=args.backend,
                                seed=7 + comm.rank if args.seed_by_rank else 7,
                                perturb_rank=args.perturb_rank)
    except RanksDiverged as exc:
        print(f"rank {comm.rank}: RanksDiverged: {exc}", flush=True)
        return
    if comm.rank == 0:
        np.savez(args.out, params=params, history=numbers(history),
                 step_path=history[-1].step_path, size=comm.size,
                 device_path=getattr(comm, "device_path", "single process"))


if __name__ == "__main__":
    sys.exit(main())

"""How data-parallel training scales: an epoch of the deep model in one process
and on N MPI ranks, and what one allreduce of a model's gradients costs.

The harness times the one-process epochs itself, then starts the ranks as
``mpiexec -n N python -m mpi4py -m gpunet.bench.scaling OUT.json --samples S
--epochs E``, each rank with cores // N BLAS threads; every rank times the
same epochs and allreduces, and rank 0 writes its readings to OUT.json.
Under MPI every rank takes the same number of readings (no time budget: the
ranks would not agree when to stop), each started after a barrier. Where two
hosts can be made on this machine (``distributed.local_hosts``), the same
allreduces are timed again with the ranks split between them, over TCP
(``--allreduce-only``), beside the shared memory of one host.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_info

from .. import seeding
from ..backend import get_backend
from ..distributed import Communicator, MPICommunicator, world
from ..distributed.launch import mpiexec_path
from ..distributed.local_hosts import LocalHosts, LocalHostsError, unavailable
from ..functional import one_hot_encode
from ..losses import SoftmaxCrossEntropy
from ..models import default_rates, mnist_model
from ..optimizers import Momentum
from ..train.fit import fit
from .flags import LoadWatch, marks
from .timing import MIN_REPEATS, HostClock, Timing, measure
from .trainers import mnist_like

MODEL, BATCH_SIZE = "deep", 128
ALLREDUCE_HOSTS = "allreduce_hosts"  # the case of the allreduces between two hosts
GRADIENT_MODELS = ("deep", "wide")
ALLREDUCE_REPEATS, ALLREDUCE_WARMUP = 200, 20
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
START_S, SLOWDOWN = 60.0, 10  # the ranks' time limit: START_S + SLOWDOWN x the one-process run
STOP_S = 5.0                  # from SIGTERM to SIGKILL of a launch past its time


class BarrierClock(HostClock):
    """Wall time on this rank from a barrier of all the ranks: a collective's
    time until it completes here, an epoch's until its last collective does."""

    def __init__(self, comm: Communicator) -> None:
        super().__init__(comm.mpi.Barrier if isinstance(comm, MPICommunicator) else lambda: None)

    def time(self, fn: Callable[[], Any], calls: int = 1) -> float:
        self.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls


def scaling_results(nproc: int, samples: int, repeats: int, skipped: list[str],
                    say: Callable[[str], None] = print,
                    watch: LoadWatch = LoadWatch()) -> list[dict[str, Any]]:
    """An epoch of ``samples`` in this process and on ``nproc`` ranks (its
    speed-up and efficiency), and the allreduce of each of ``GRADIENT_MODELS``'
    gradients on those ranks, as records, the epochs timed ``repeats // 2``
    times but at least ``MIN_REPEATS``; none, the reason added to ``skipped``,
    where the ranks cannot run or fail. ``watch`` reads the load around the
    one-process epochs; not around the ranks, which are themselves N busy processes."""
    launcher = mpi_launcher()
    if isinstance(launcher, str):
        return _skip(nproc, launcher, skipped, say)
    epochs = max(repeats // 2, MIN_REPEATS)
    alone, load = watch.around(lambda: time_epochs(Communicator(), samples, epochs))
    ranks = run_ranks(launcher, nproc, samples, epochs,
                      START_S + SLOWDOWN * (epochs + 1) * alone.median_s)
    if isinstance(ranks, str):
        return _skip(nproc, ranks, skipped, say)
    one = {**_epoch_record(alone, samples, 1, blas_threads()), **load}
    many = _epoch_record(Timing(ranks["epoch_s"], 1), samples, nproc, ranks["blas_threads"])
    many["speedup"] = one["median_s"] / many["median_s"]
    many["efficiency"] = many["speedup"] / nproc
    reduced = _allreduce_records("allreduce", ranks, nproc)
    say(f"scaling {MODEL} batch {BATCH_SIZE}: 1 process {one['samples_per_s']:,.0f} samples/s"
        f"{marks(one)}, {nproc} ranks {many['samples_per_s']:,.0f} samples/s{marks(many)} "
        f"({many['speedup']:.2f}x, efficiency {many['efficiency']:.0%}); allreduce "
        + ", ".join(f"{r['model']} {r['median_s'] * 1e6:,.0f} µs{marks(r)}" for r in reduced))
    return [one, many, *reduced, *host_allreduce(launcher, nproc, reduced, skipped, say)]


def host_allreduce(mpiexec: Path, nproc: int, shared: list[dict[str, Any]], skipped: list[str],
                   say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The allreduces of ``GRADIENT_MODELS``' gradients on ``nproc`` ranks split between
    two hosts made on this machine (``ALLREDUCE_HOSTS`` records), said beside the
    ``shared``-memory ones; none, the reason added to ``skipped``, where the hosts
    cannot be made or the ranks fail."""
    per_host = -(-nproc // 2)
    reason = unavailable()
    if reason is None:
        try:
            with LocalHosts() as hosts:
                ranks = run_ranks(mpiexec, nproc, 0, 0, START_S, hosts)
        except LocalHostsError as exc:
            ranks = str(exc)
        reason = ranks if isinstance(ranks, str) else None
    if reason is not None:
        skipped.append(f"allreduce between 2 hosts: {reason}")
        say(f"skipping the allreduce between 2 hosts: {reason}")
        return []
    reduced = [{**record, "hosts": 2, "ranks_per_host": per_host, "link": "tcp"}
               for record in _allreduce_records(ALLREDUCE_HOSTS, ranks, nproc)]
    say(f"allreduce min / median / max, {nproc} ranks: between 2 hosts (TCP, {per_host} a host) "
        + ", ".join(_spread(r) for r in reduced) + "; in shared memory (1 host) "
        + ", ".join(_spread(r) for r in shared))
    return reduced


def _allreduce_records(case: str, ranks: dict[str, Any], nproc: int) -> list[dict[str, Any]]:
    return [{"case": case, "model": model, "ranks": nproc, "dtype": "float32",
             "elements": gradient_size(model), "bytes": 4 * gradient_size(model),
             **Timing(ranks["allreduce_s"][model], 1).record()} for model in GRADIENT_MODELS]


def _spread(record: dict[str, Any]) -> str:
    times = " / ".join(f"{record[key] * 1e6:,.0f}" for key in ("min_s", "median_s", "max_s"))
    return f"{record['model']} {times} µs{marks(record)}"


def _skip(nproc: int, reason: str, skipped: list[str], say: Callable[[str], None]) -> list:
    skipped.append(f"scaling on {nproc} ranks: {reason}")
    say(f"skipping scaling on {nproc} ranks: {reason}")
    return []


def _epoch_record(timing: Timing, samples: int, ranks: int,
                  threads: int | None) -> dict[str, Any]:
    return {"case": "scaling", "what": "epoch", "model": MODEL, "backend": "numpy",
            "batch_size": BATCH_SIZE, "ranks": ranks, "blas_threads": threads,
            "samples": samples, **timing.record(), "samples_per_s": samples / timing.median_s}


def mpi_launcher() -> Path | str:
    """mpiexec beside this Python, else on PATH; or why no ranks can start here."""
    try:
        import mpi4py  # noqa: F401  (MPI itself starts only in the ranks)
    except ImportError as exc:
        return f"mpi4py is not installed ({exc}); pip install 'gpunet[mpi]'"
    found = mpiexec_path()
    if found is None:
        return f"no mpiexec beside {sys.executable} or on PATH; pip install 'gpunet[mpi]'"
    return Path(found)


def run_ranks(mpiexec: Path, nproc: int, samples: int, epochs: int, timeout_s: float,
              hosts: LocalHosts | None = None) -> dict[str, Any] | str:
    """Rank 0's readings from ``nproc`` ranks of this module under ``mpiexec``,
    or why there are none; on ``hosts``, split between them and timing only the
    allreduces. mpiexec runs in a session of its own, stopped with its ranks if
    they outlast ``timeout_s`` (or this process is interrupted)."""
    local = nproc if hosts is None else -(-nproc // 2)
    what = f"{mpiexec} -n {nproc}" + ("" if hosts is None else f" on 2 hosts ({local} a host)")
    threads = str(max(1, (os.cpu_count() or 1) // local))
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "readings.json"
        module = [sys.executable, "-m", "mpi4py", "-m", __name__, str(out)]
        if hosts is None:
            command = [str(mpiexec), "-n", str(nproc), *module, "--samples", str(samples),
                       "--epochs", str(epochs)]
        else:
            command = [*hosts.mpiexec("-ppn", str(local), "-n", str(nproc)), *module,
                       "--allreduce-only"]
        ranks = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                 env={**os.environ, **dict.fromkeys(THREAD_VARIABLES, threads)})
        try:
            output, _ = ranks.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return f"{what} did not finish in {timeout_s:.0f} s"
        finally:
            _stop(ranks)
        if ranks.returncode != 0 or not out.is_file():
            return f"{what} failed (exit {ranks.returncode}): {_reason(output)}"
        readings = json.loads(out.read_text())
    if readings["ranks"] != nproc:
        return (f"{what} started ranks that each saw {readings['ranks']} rank(s): "
                "is it the MPI that mpi4py was built for?")
    return readings


def _stop(launch: subprocess.Popen) -> None:
    """End what is left of ``launch``: SIGTERM to its process group (mpiexec
    then ends the ranks, which it starts in sessions of their own), SIGKILL
    after ``STOP_S`` seconds."""
    if launch.poll() is None:
        os.killpg(launch.pid, signal.SIGTERM)
        try:
            launch.wait(STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()
    launch.stdout.close()


def _reason(output: str) -> str:
    """The exception the ranks' output ends with, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception"))]
    return (errors or lines or ["no output"])[-1]


def time_epochs(comm: Communicator, samples: int, epochs: int) -> Timing:
    """``epochs`` readings of one epoch of the deep model (NumPy, float32,
    softmax cross-entropy, momentum) on ``samples`` MNIST-shaped samples,
    trained by ``fit`` on ``comm``'s ranks, after a warm-up epoch."""
    seeding.seed(0)
    backend = get_backend("numpy")
    x, labels = mnist_like(samples)
    y = one_hot_encode(labels, backend=backend)
    model = mnist_model(MODEL, backend=backend)
    loss, optimizer = SoftmaxCrossEntropy(), Momentum(*default_rates(MODEL, BATCH_SIZE))

    def epoch() -> None:
        fit(model, loss, optimizer, x, y, epochs=1, batch_size=BATCH_SIZE, progress=False,
            comm=comm)
    return measure(epoch, BarrierClock(comm), repeats=epochs)


def time_allreduce(comm: Communicator, elements: int) -> Timing:
    """``ALLREDUCE_REPEATS`` readings of ``comm.allreduce`` of a float32 array
    of ``elements``, after ``ALLREDUCE_WARMUP`` untimed ones."""
    gradient = np.zeros(elements, np.float32)
    return measure(lambda: comm.allreduce(gradient), BarrierClock(comm),
                   repeats=ALLREDUCE_REPEATS, warmup=ALLREDUCE_WARMUP)


def gradient_size(model: str) -> int:
    """Elements in the flat gradient of the MNIST preset ``model``."""
    return sum(p.size for p in mnist_model(model, backend=get_backend("numpy")).params())


def blas_threads() -> int | None:
    """The threads this process's BLAS uses (threadpoolctl), None if none is loaded."""
    return max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"),
               default=None)


def main(argv: list[str] | None = None) -> None:
    """One rank's part: time the epochs and the allreduces; rank 0 writes them."""
    parser = argparse.ArgumentParser(prog="python -m mpi4py -m gpunet.bench.scaling")
    parser.add_argument("out", type=Path, help="the JSON file rank 0 writes its readings to")
    parser.add_argument("--samples", type=int, default=0, help="samples in an epoch")
    parser.add_argument("--epochs", type=int, default=0, help="timed epochs")
    parser.add_argument("--allreduce-only", action="store_true", help="time no epochs")
    args = parser.parse_args(argv)
    comm = world()
    readings: dict[str, Any] = {"ranks": comm.size, "blas_threads": blas_threads()}
    if not args.allreduce_only:
        readings["epoch_s"] = time_epochs(comm, args.samples, args.epochs).times_s
    readings["allreduce_s"] = {model: time_allreduce(comm, gradient_size(model)).times_s
                               for model in GRADIENT_MODELS}
    if comm.rank == 0:
        args.out.write_text(json.dumps(readings))


if __name__ == "__main__":
    main()

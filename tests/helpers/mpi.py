"""Commands under mpiexec: MPICH's from the mpich wheel, or the one on PATH (None where
there is none)."""
from __future__ import annotations

import os
import subprocess

from gpunet.distributed.launch import OPEN_MPI_AS_ROOT, mpiexec_path

MPIEXEC = mpiexec_path()
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
# Open MPI's mpiexec refuses to start as root unless both are 1 (GPU containers run
# as root; seen on the H200 of 2026-12-04); MPICH's ignores them.
AS_ROOT = dict.fromkeys(OPEN_MPI_AS_ROOT, "1")


def mpiexec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([MPIEXEC, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **AS_ROOT, **ONE_THREAD}, stdin=subprocess.DEVNULL)

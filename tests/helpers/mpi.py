"""Commands under MPICH's mpiexec (from the mpich wheel, or None where there is none)."""
from __future__ import annotations

import os
import subprocess

from gpunet.distributed.launch import mpiexec_path

MPIEXEC = mpiexec_path()
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def mpiexec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([MPIEXEC, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **ONE_THREAD}, stdin=subprocess.DEVNULL)

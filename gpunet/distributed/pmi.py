"""Ending a launch from a rank that cannot join it: MPICH's PMI wire protocol.

A rank that ends before MPI_Init (mpi4py or its MPI library missing on one host)
leaves the others waiting in MPI_Init for ever: Hydra, MPICH's mpiexec, ends a job
when a rank fails, but knows a process as a rank only once it has spoken PMI, which
MPI_Init does. Such a rank can still speak it: PMI-1 over the socket whose number
Hydra puts in $PMI_FD, as MPICH's own PMI_Abort does ("cmd=init", then "cmd=abort
exitcode=N"), and Hydra ends every rank with that status. Open MPI's mpirun ends a
job when any process fails and gives no $PMI_FD; Slurm's srun neither (its
--kill-on-bad-exit ends the others).
"""
from __future__ import annotations

import os
import select
from typing import Mapping

ANSWER_S = 2.0  # how long to wait for the launcher's answer to init


def abort_launch(status: int, environ: Mapping[str, str] = os.environ) -> bool:
    """Ask the launcher that started this process to end every rank with ``status``;
    whether it was asked (False without a PMI socket, or where it would not answer)."""
    fd = environ.get("PMI_FD", "")
    if not fd.isdigit():
        return False
    try:
        os.write(int(fd), b"cmd=init pmi_version=1 pmi_subversion=1\n")
        if not select.select([int(fd)], [], [], ANSWER_S)[0]:
            return False
        if b"rc=0" not in os.read(int(fd), 1024):
            return False
        os.write(int(fd), f"cmd=abort exitcode={status}\n".encode())
    except OSError:
        return False
    return True

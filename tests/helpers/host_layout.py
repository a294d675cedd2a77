"""Where each rank of a launch runs and what it computes with:
``python -m mpi4py tests/helpers/host_layout.py`` under mpiexec prints, from rank 0,
one JSON list of every rank's host (MPI's processor name), local rank and size,
cores, and the threads ``gpunet train`` would choose for it (``threads.chosen_threads``)."""
from __future__ import annotations

import json
import os

from mpi4py import MPI

from gpunet.distributed import MPICommunicator
from gpunet.threads import chosen_threads


def main() -> None:
    comm = MPICommunicator()
    mine = {"rank": comm.rank, "host": MPI.Get_processor_name(), "local_rank": comm.local_rank,
            "local_size": comm.local_size, "cores": len(os.sched_getaffinity(0)),
            "threads": chosen_threads(None, comm).count}
    layout = comm.gather(mine)
    if comm.rank == 0:
        print(json.dumps(layout), flush=True)


if __name__ == "__main__":
    main()

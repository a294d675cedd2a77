"""``gpunet info``: which backends run here, and the CUDA device if there is one."""
from __future__ import annotations

import argparse
from importlib import metadata

from ..backend import ENV_VAR, UnknownBackend, backend_name, cuda_status, explain_auto, host_c
from ..backend.cuda_probe import device_properties
from ..distributed.device import nccl_module
from ..distributed.launch import explain_ranks
from ..planning.graph import explain_auto_graph


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cmd = commands.add_parser("info", help="the backends available here, and why not")
    cmd.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    from .. import __version__
    print(f"gpunet {__version__}")
    print(f"numpy backend: available (NumPy {metadata.version('numpy')})")
    lib = host_c.library()
    print("numpy backend's C (its dropout, loss and momentum; --graph's host replay): "
          + (f"unavailable: {lib}" if isinstance(lib, str) else f"built, {lib._name}"))
    status = cuda_status()
    if status.usable:
        device = device_properties()
        print(f"cupy backend: available: {device['name']}, "
              f"{device['memory_bytes'] / 2 ** 30:.1f} GiB, compute capability "
              f"{device['compute_capability']}, CUDA runtime {device['runtime']}, "
              f"driver {device['driver']}")
    else:
        print(f"cupy backend: unavailable: {status.reason}")
    print(explain_auto())
    print(explain_auto_graph())
    print(explain_ranks())
    nccl = nccl_module()
    print("GPU ranks: NCCL" if not isinstance(nccl, str) else
          f"GPU ranks: through the host, no NCCL: {nccl}")
    try:
        print(f"default backend: {backend_name()} (from ${ENV_VAR}, else auto)")
    except UnknownBackend as exc:
        print(f"default backend: invalid: {exc}; commands without --backend refuse to run")
    return 0

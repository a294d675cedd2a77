"""The NumPy backend's C: ``host_operations.c`` (the eager operations) with the
graph step's stages (``host_step.c``) and the matrix products (``host_gemm.c``)
it includes, built once a machine
(``host_library.py``) and loaded once a process; and the addresses of the
NumPy arrays it is given."""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Any

from . import splitmix
from .graph_step import COUNTER, KEY, OFFSET, STATE_SIZE
from .host_library import HostLibraryError, load

SOURCE = Path(__file__).with_name("host_operations.c")
STEP_SOURCE = Path(__file__).with_name("host_step.c")
GEMM_SOURCE = Path(__file__).with_name("host_gemm.c")
P, N, F, U = ctypes.c_void_p, ctypes.c_long, ctypes.c_float, ctypes.c_uint64
SIGNATURES = {"dense_forward": [P, P, P, N, N, P, U, F, F],
              "dense_backward": [P, P, P, P, P, N, N, ctypes.c_int, F],
              "logits_shifted": [P, P, P, P, P, N, N],
              "losses_and_gradient": [P, P, P, P, P, P, P, P, P, N, N, F],
              "momentum_update_and_advance": [P, P, P, N, P, P, P],
              "momentum_update": [P, P, P, N, F, F, F],
              "dropout": [P, P, P, N, U, U, F, F],
              "shifted_one_hot": [P, P, P, P, N, N],
              "one_hot_losses": [P, P, P, P, P, P, P, N, N, F],
              "gemm_ready": [],
              "gemm_dots": [P, P, P, N, N, N, N, N, N],
              "gemm_axpys": [P, P, P, N, N, N, N, N, N, N]}
# host_step.c's constants: the graph state's layout, SplitMix64's, and a number for
# each activation whose gradient dense_backward computes (by its name in ACTIVATIONS).
STATE_FLAGS = [f"-D{name}={value}" for name, value in
               (("OFFSET", OFFSET), ("COUNTER", COUNTER), ("KEY", KEY), ("STATE_SIZE", STATE_SIZE))]
SPLITMIX_FLAGS = [f"-D{name}={getattr(splitmix, name):#x}ull" for name in ("GAMMA", "MIX1", "MIX2")]
ACTIVATION_CODES = {"tanh": 1, "sigmoid": 2, "relu": 3, "leaky_relu": 4}
ACTIVATION_FLAGS = [f"-D{name.upper()}={code}" for name, code in ACTIVATION_CODES.items()]


@functools.cache
def library() -> ctypes.CDLL | str:
    """The C loaded, built on first use; or why it cannot be (kept, so a
    process tries once)."""
    try:
        lib = load(SOURCE, [*STATE_FLAGS, *SPLITMIX_FLAGS, *ACTIVATION_FLAGS], SIGNATURES,
                   includes=[STEP_SOURCE, GEMM_SOURCE])
    except HostLibraryError as exc:
        return str(exc)
    lib.shifted_one_hot.restype = ctypes.c_bool
    lib.gemm_ready.restype = ctypes.c_int
    return lib


def at(array: Any) -> int:
    """The address of an array's first element (ctypes' from_buffer, a third of
    ``array.ctypes.data``'s time, where the array is writable)."""
    if not array.flags.writeable:
        return array.ctypes.data
    return ctypes.addressof(ctypes.c_char.from_buffer(array))


def c_arrays(dtype: Any, *arrays: Any) -> bool:
    """Whether every array but None is C-contiguous, of ``dtype``."""
    return all(a is None or (a.flags.c_contiguous and a.dtype == dtype) for a in arrays)

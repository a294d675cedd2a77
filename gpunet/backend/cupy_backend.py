"""The CUDA backend through CuPy.

For now it runs the generic ``Backend`` operations as CuPy expressions; the
custom elementwise kernels that fuse them are the CuPy backend issue's work.
Import this module only after ``probe_cuda()`` said a device is usable.
"""
from __future__ import annotations

import cupy
import numpy as np

from .base import Array, Backend


class CupyBackend(Backend):
    name = "cupy"
    xp = cupy
    array_type = cupy.ndarray

    def to_numpy(self, x: Array) -> np.ndarray:
        return cupy.asnumpy(x)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

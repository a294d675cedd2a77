"""Arrays back on the host."""
import numpy as np

import gpunet


def host(backend: gpunet.Backend, x) -> np.ndarray:
    return backend.to_numpy(x)

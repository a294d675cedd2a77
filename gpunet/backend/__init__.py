"""Choosing a backend: ``get_backend('numpy' | 'cupy' | 'auto')``.

With no name, the environment variable ``GPUNET_BACKEND`` decides, else
``'auto'``, which takes CuPy only when a CUDA device really works and NumPy
otherwise (``explain_auto()`` says why, in one line). One instance exists per
backend, so its random generator is shared by every layer that uses it.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .base import DEFAULT_DTYPE, Array, Backend
from .cuda_probe import CudaStatus, probe_cuda
from .numpy_backend import NumpyBackend

BACKEND_NAMES = ("numpy", "cupy", "auto")
ENV_VAR = "GPUNET_BACKEND"

_instances: dict[str, Backend] = {}
_by_array_type: dict[type, Backend] = {}
_cuda_status: CudaStatus | None = None


class BackendUnavailable(RuntimeError):
    """The backend asked for cannot run here; the message says why."""


class UnknownBackend(ValueError):
    """A backend name (given, or from ``$GPUNET_BACKEND``) that is not one of ``BACKEND_NAMES``."""


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend called ``name`` (default: ``$GPUNET_BACKEND``, else ``'auto'``)."""
    if isinstance(name, Backend):
        return name
    key = backend_name(name)
    if key == "auto":
        key = "cupy" if cuda_status().usable else "numpy"
    if key not in _instances:
        _register(_create(key))
    return _instances[key]


def backend_name(name: str | None = None) -> str:
    """``name`` (default: ``$GPUNET_BACKEND``, else ``'auto'``) as one of
    ``BACKEND_NAMES``; UnknownBackend naming where a bad name came from."""
    source = "backend"
    if name is None:
        name, source = os.environ.get(ENV_VAR) or "auto", f"${ENV_VAR}"
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in BACKEND_NAMES:
        raise UnknownBackend(f"unknown {source} {name!r}; valid backends: "
                             f"{', '.join(BACKEND_NAMES)}")
    return key


def backend_of(x: Any) -> Backend:
    """The backend that owns array ``x``; for lists and scalars, the default backend."""
    backend = _by_array_type.get(type(x))
    if backend is not None:
        return backend
    return get_backend("numpy" if isinstance(x, np.ndarray) else None)


def cuda_status() -> CudaStatus:
    """Whether CuPy can use a CUDA device here (probed once per process)."""
    global _cuda_status
    if _cuda_status is None:
        _cuda_status = probe_cuda()
    return _cuda_status


def explain_auto() -> str:
    """One line: what 'auto' picks here, and why."""
    status = cuda_status()
    return f"auto -> {'cupy' if status.usable else 'numpy'}: {status.reason}"


def _create(name: str) -> Backend:
    if name == "numpy":
        return NumpyBackend()
    status = cuda_status()
    if not status.usable:
        raise BackendUnavailable(f"the 'cupy' backend is unavailable: {status.reason}")
    from .cupy_backend import CupyBackend
    return CupyBackend()


def _register(backend: Backend) -> None:
    _instances[backend.name] = backend
    _by_array_type[backend.array_type] = backend


__all__ = ["Array", "Backend", "BackendUnavailable", "BACKEND_NAMES", "CudaStatus",
           "DEFAULT_DTYPE", "ENV_VAR", "UnknownBackend", "backend_name", "backend_of",
           "cuda_status", "explain_auto", "get_backend"]

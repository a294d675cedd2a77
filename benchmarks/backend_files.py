"""Backend modules loaded anew from their files, over stand-ins already in ``sys.modules``.

Where no CuPy or no device is, a stand-in ``cupy`` (or a libcublas written in
Python) lets CuPy's glue run on the host: ``step_host_work`` times it, and the
tests check it. The package's own modules are left as they were.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import gpunet.backend

# CupyBackend's modules, each after those it imports.
CUPY_BACKEND_FILES = ("cublas_capture.py", "cupy_planned_step.py", "cupy_graph_step.py",
                      "cupy_backend.py")


def fresh_backend_modules(*file_names: str) -> list[ModuleType]:
    """Each ``gpunet/backend/<file_name>``, in order, executed as a new module of
    its own name: it imports whatever stand-ins are in ``sys.modules`` (``cupy``),
    and a later one importing an earlier one gets the new one. ``sys.modules``
    is left as it was, and so the package's own modules."""
    folder = Path(gpunet.backend.__file__).parent
    names = [f"gpunet.backend.{Path(file_name).stem}" for file_name in file_names]
    saved = {name: sys.modules.get(name) for name in names}
    modules = []
    try:
        for file_name, name in zip(file_names, names):
            spec = importlib.util.spec_from_file_location(name, folder / file_name)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # what a later file's relative import finds
            spec.loader.exec_module(module)
            modules.append(module)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return modules

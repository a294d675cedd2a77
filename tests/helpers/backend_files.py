"""A backend module loaded anew from its file, over stand-ins already in ``sys.modules``."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import gpunet.backend


def fresh_backend_module(file_name: str, name: str) -> ModuleType:
    """``gpunet/backend/<file_name>`` executed as a new module ``name``: it
    imports whatever stand-ins the test has put in ``sys.modules`` (``cupy``),
    and the package's own module is left as it was."""
    spec = importlib.util.spec_from_file_location(
        name, Path(gpunet.backend.__file__).with_name(file_name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

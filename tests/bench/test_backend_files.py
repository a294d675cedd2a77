"""benchmarks/backend_files.py: backend modules loaded anew over stand-ins."""
from __future__ import annotations

import sys
import types

from benchmarks.backend_files import CUPY_BACKEND_FILES, fresh_backend_modules


def test_cupy_backend_loads_anew_over_a_stand_in_cupy_leaving_the_packages_own(monkeypatch):
    """Each of CupyBackend's files runs anew, in order, over the stand-in ``cupy``;
    a later one imports the earlier ones' new modules (CupyBackend's mixins are
    theirs), and ``sys.modules`` keeps the package's own, or none, after."""
    cupy = types.ModuleType("cupy")
    cupy.ndarray = type("ndarray", (), {})
    cupy.cuda = types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    names = [f"gpunet.backend.{file.removesuffix('.py')}" for file in CUPY_BACKEND_FILES]
    before = {name: sys.modules.get(name) for name in names}
    cublas, planned, graph, backend = fresh_backend_modules(*CUPY_BACKEND_FILES)
    assert {name: sys.modules.get(name) for name in names} == before
    assert all(module.cupy is cupy for module in (cublas, planned, graph, backend))
    assert backend.CupyBackend.__mro__[1:3] == (graph.CupyGraphStepOperations,
                                                planned.CupyPlannedStepOperations)
    assert planned.captured_cublas is cublas.captured_cublas
    assert backend.CupyBackend.xp is cupy

"""CupyBackend on the host, for the tests of its operations.

Its kernels.py rows compiled with g++ as plain C++ functions and run on NumPy
arrays the way CuPy would pass them (``host_run``), its block kernels run as
fibers in turn between barriers (``helpers/block_kernel_source.py``), and CuPy
swapped for NumPy in its modules (``cupy_backend_on_host``): every operation's glue (allocations,
argument order, scalars) is gpunet's. Also what the tests of it share: drawing
and checking values, the launches made (``LAUNCHED``), a recorded step's ways
(``recording``, ``capturing``), side streams that log (``logged_branches``), and
libcublas as NumPy (``NumpyCublas``).
"""
from __future__ import annotations

import contextlib
import ctypes
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest

from gpunet.backend import block_kernels
from gpunet.backend.block_kernels import BLOCK_KERNELS
from gpunet.backend.kernels import KERNELS, KernelSpec
from gpunet.backend.side_stream import Branches, SidePool
from helpers.block_kernel_source import params as block_params
from helpers.capture_graph import MAIN
from helpers.kernel_source import C_TYPES, PLACEHOLDERS, Param, host_build, params, render
from helpers.races import accesses, span

DTYPES = (np.float32, np.float64)
# glibc's libm and CUDA's differ by ulps (and both from NumPy's own loops), so
# these tolerances check the formulas, not CUDA's rounding. atol only matters
# near zero: large values (losses up to 2e3, gradients up to 1e4) are within
# rtol, as no formula here cancels, so atol needs no scaling by magnitude.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 2e-6, np.float64: 1e-14}
# Placed first in the drawn values, as many as fit: every activation meets
# them at n = 1000.
EXTREMES = (1e4, -1e4, np.inf, -np.inf, np.nan, 0.0, -0.0, 88.0, -88.0, 800.0, -800.0)
Run = Callable[..., Any]
RECORDING: list[set[str]] = []  # sets the kernels run (a row or a grid kernel) are added to
STREAMS: list[int] = []  # the streams bound launches were given (kernels' launch)
LAUNCHED: list[str] = []  # the block kernels kernels' launch ran, by name
# Each block launch and libcublas call (its stream, what it reads and writes) and each
# fork and join of a LoggedSide, in turn: helpers/races.py's log
EVENTS: list[tuple] = []
BRANCH: list[str] = []  # the LoggedSide forked into, if any


def host_run(folder: Path, flags: tuple[str, ...] = ()) -> Run:
    """``run(name, *args, size=None)``: kernel ``name`` called as CuPy calls it:
    inputs then outputs, positional; outputs left off are allocated; ``size``
    threads where every array is raw; returns the outputs (one, or a tuple).
    Its types are bound as CuPy binds them (``bind``); each kernel built in
    ``folder`` with g++'s ``flags`` too, every row in one library a float type."""

    def compile_(specs: list[KernelSpec], types: dict[str, str], stem: str) -> Any:
        source = folder / f"{stem}.cpp"
        source.write_text("\n".join(render(spec, types, "host") for spec in specs))
        command = host_build(source, source.with_suffix(".so"), *flags)
        return source.with_suffix(".so"), subprocess.Popen(command, stderr=subprocess.PIPE,
                                                          text=True)

    def load(library: Any, build: Any) -> ctypes.CDLL:
        _, errors = build.communicate()
        assert build.returncode == 0, f"g++ fails for {library.name}:\n{errors}"
        return ctypes.CDLL(str(library))

    # Every kernel, every placeholder one float type: both builds run at once.
    builds = {c: compile_(list(KERNELS.values()), dict.fromkeys(PLACEHOLDERS, c), f"kernels_{c}")
              for c in (C_TYPES[np.dtype(d).name] for d in DTYPES)}
    prebuilt = {c: load(*build) for c, build in builds.items()}
    alone: dict[tuple, ctypes.CDLL] = {}

    def function(name: str, types: dict[str, str]) -> Any:
        """Kernel ``name`` with placeholder C ``types``: from a prebuilt library
        when they are one float type, else built alone (once)."""
        c_types = set(types.values())
        if len(c_types) == 1 and c_types <= prebuilt.keys():
            return getattr(prebuilt[c_types.pop()], KERNELS[name].name)
        key = (name, *sorted(types.items()))
        if key not in alone:
            alone[key] = load(*compile_([KERNELS[name]], types, f"{name}_{len(alone)}"))
        return getattr(alone[key], KERNELS[name].name)

    def run(name: str, *args: Any, size: int | None = None) -> Any:
        ps = params(KERNELS[name])
        n_in = sum(not p.output for p in ps)
        if len(args) not in (n_in, len(ps)):
            raise TypeError(f"{name} takes {n_in} or {len(ps)} arguments, got {len(args)}")
        bound = bind(ps, args)
        types = [bound[p.type] if p.type in PLACEHOLDERS else np.dtype(p.type) for p in ps]
        # CuPy's size=, where every array is raw: the scalars' shape, one per thread
        shape = (size,) if size is not None else np.broadcast_shapes(
            *(np.shape(a) for p, a in zip(ps, args) if not p.raw))
        given = list(args) + [undefined(shape, t) for t in types[len(args):]]
        buffers = []
        for p, t, arg in zip(ps, types, given):
            value = np.asarray(arg, t)  # a Python scalar becomes the declared type
            buffers.append(np.array(value if p.raw else np.broadcast_to(value, shape), order="C"))
        fn = function(name, {t: C_TYPES[d.name] for t, d in bound.items()})
        fn.argtypes = [ctypes.c_void_p] * len(ps) + [ctypes.c_ssize_t]
        fn(*(b.ctypes.data for b in buffers), int(np.prod(shape)))
        if np.prod(shape) > 0:  # the kernel ran over elements: each recording notes it
            for ran in RECORDING:
                ran.add(name)
        outputs = []
        for p, arg, buffer in zip(ps, given, buffers):
            if p.output:
                arg[...] = buffer  # read-modify-write outputs come back to the caller's array
                outputs.append(arg)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    return run


def bind(ps: list[Param], args: tuple) -> dict[str, np.dtype]:
    """Each placeholder's dtype, as CuPy decides it (``_decide_params_type_core``
    in cupy/_core/_kernel.pyx): outputs first, then inputs, each array binds its
    placeholder to its dtype, and an array whose dtype differs from its
    placeholder's binding or its declared type is refused; scalars bind nothing."""
    bound: dict[str, np.dtype] = {}
    for p, arg in sorted(zip(ps, args), key=lambda pair: not pair[0].output):
        if isinstance(arg, np.ndarray):
            want = bound.setdefault(p.type, arg.dtype) if p.type in PLACEHOLDERS else np.dtype(p.type)
            if arg.dtype != want:
                raise TypeError(f"Type is mismatched. {p.name} {arg.dtype} {want}")
    return bound


def undefined(shape: Any, dtype: Any = float, order: str = "C") -> np.ndarray:
    """``np.empty``, its bytes all 0xFF (NaN as a float, -1 as an integer): what
    ``cupy.empty`` returns is whatever its memory pool's block last held, so a
    kernel reading an output before writing it reads NaN here, not zeros."""
    array = np.empty(shape, dtype, order)
    ctypes.memset(array.ctypes.data, 0xFF, array.nbytes)
    return array


def patch_cupy(patch: pytest.MonkeyPatch, name: str, value: Any) -> None:
    """``name`` set to ``value`` by ``patch`` in each module of CupyBackend's that
    has it (cupy_backend.py, cupy_planned_step.py, cupy_graph_step.py)."""
    from gpunet.backend import cupy_backend, cupy_graph_step, cupy_planned_step
    for module in (cupy_backend, cupy_planned_step, cupy_graph_step):
        if hasattr(module, name):
            patch.setattr(module, name, value)


@contextlib.contextmanager
def cupy_backend_on_host(run: Run, block_launch: Run) -> Iterator[Any]:
    """Inside, gpunet's own CupyBackend, with CuPy swapped out of its modules for
    the host (``stand_in_cupy()``): NumPy allocates its arrays, ``run`` runs its
    kernels and ``block_launch`` its block kernels, so every operation's glue
    (allocations, argument order, scalars) is cupy_backend.py's and its mixins'."""
    from gpunet.backend import cupy_backend

    def elementwise(name: str) -> Run:
        return lambda *args, **size: run(name, *args, **size)

    def launch(name: str, dtype: Any, grid: Any, block: Any, args: tuple, bound: Any = None
               ) -> None:
        """``block_launch``; a grid kernel over elements counts as its row's run;
        a bound launch notes the stream each replay gives it in STREAMS."""
        block_launch(name, dtype, grid, block, args, bound)
        LAUNCHED.append(name)
        EVENTS.append(("launch", BRANCH[-1] if BRANCH else MAIN, name,
                       *accesses(block_kernels.kernel(name).params, args)))
        if bound is not None:
            again = bound[-1]
            bound[-1] = lambda stream: (STREAMS.append(stream), again(stream))
        if name.startswith("grid_"):
            n = [p.name for p in block_params(BLOCK_KERNELS[name].params)].index("n")
            for ran in RECORDING if args[n] > 0 else ():
                ran.add(name.removeprefix("grid_"))

    with pytest.MonkeyPatch.context() as patch:
        patch_cupy(patch, "cupy", SimpleNamespace(empty=undefined,
                                                  ascontiguousarray=np.ascontiguousarray))
        patch_cupy(patch, "elementwise", elementwise)
        patch.setattr(block_kernels.launches, "launch", launch)
        # Not constructed: a constructed backend would reseed from real CuPy on gpunet.seed.
        yield object.__new__(cupy_backend.CupyBackend)


def stand_in_cupy() -> Any:
    """The ``cupy`` CupyBackend's modules see inside ``cupy_backend_on_host``."""
    from gpunet.backend import cupy_backend
    return cupy_backend.cupy


def draw(shape: Any, dtype: Any, low: float = -6.0, high: float = 6.0, seed: int = 0,
         extremes: tuple[float, ...] = ()) -> np.ndarray:
    """Uniform values of ``shape``, the first of them (flat) replaced by ``extremes``."""
    x = np.random.default_rng(seed).uniform(low, high, shape)
    count = min(x.size, len(extremes))
    x.flat[:count] = extremes[:count]
    return x.astype(dtype)


def check(got: Any, expected: Any, precision: Any = None) -> None:
    """``got`` has the dtype and shape of ``expected`` and its values, NaN for
    NaN, within the tolerance of ``precision`` (default: that dtype)."""
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    dtype = precision or expected.dtype.type
    if dtype in RTOL:
        np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=ATOL[dtype])
    else:
        np.testing.assert_array_equal(got, expected)


@contextlib.contextmanager
def recording(kernels: Any, way: str, cublas: Any) -> Any:
    """Inside, ``kernels`` makes its operations as a recorded step does: its
    products tiled where ``_tiled`` says, or, ``way`` "cuBLAS", each by ``cublas``."""
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        if way == "cuBLAS":  # else _tiled's own choice for these short sums: tiled
            patch_cupy(patch, "_tiled", lambda *product: False)
        patch_cupy(patch, "captured_cublas", lambda: cublas)
        yield


@contextlib.contextmanager
def capturing(kernels: Any, side: Branches | None) -> Any:
    """Inside, ``kernels`` makes its operations as a recorded step does (tiled
    where ``_tiled`` says) and, given branches ``side``, as a capture does,
    forking work aside onto them; LAUNCHED starts empty."""
    del LAUNCHED[:]
    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(kernels, "captured_gemm", "cuBLAS", raising=False)
        patch.setattr(kernels, "side", side, raising=False)
        patch.setattr(stand_in_cupy(), "cuda", SimpleNamespace(get_current_stream=lambda: None),
                      raising=False)
        yield


class LoggedSide:
    """A SideStream that logs, by its ``name``, its forks and joins and the
    launches made inside a fork; like a SideStream, a join of one given nothing
    since its last does nothing."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log, self.open = name, log, False

    @contextlib.contextmanager
    def fork(self, main: Any) -> Any:
        start = len(LAUNCHED)
        self.log.append(("fork", self.name))
        EVENTS.append(("fork", self.name))
        BRANCH.append(self.name)
        self.open = True
        try:
            yield
        finally:
            BRANCH.pop()
        self.log.append(("back", self.name, LAUNCHED[start:]))

    def join(self, main: Any) -> None:
        if self.open:
            self.log.append(("join", self.name))
            EVENTS.append(("join", self.name))
            self.open = False


def logged_branches(sizes: tuple[int, ...]) -> tuple[Branches, list]:
    """Branches of ``sizes`` LoggedSides (CupyBackend.SIDE_STREAMS), each kind's
    first named for it, the others "products 2", ..., and their log."""
    log: list = []
    return Branches(*(SidePool([LoggedSide(f"{kind} {i + 1}" if i else kind, log)
                                for i in range(size)])
                      for kind, size in zip(Branches._fields, sizes, strict=True))), log


def check_product(out: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """``out`` is a b within the rounding a sum of k products in out's dtype may have."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    bound = a.shape[1] * np.finfo(out.dtype).eps * (np.abs(a) @ np.abs(b))
    assert out.shape == (a.shape[0], b.shape[1]) and (np.abs(out - a @ b) <= bound).all()


class NumpyCublas:
    """``captured_cublas()`` as NumPy: each product into its ``out``, each call noted."""

    def __init__(self) -> None:
        self.operands: list[tuple[np.ndarray, np.ndarray]] = []

    def gemm(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, bound: list | None = None
             ) -> None:
        self.operands.append((a, b))
        # on the capture's stream, the handle's, wherever a product was forked
        EVENTS.append(("launch", MAIN, "libcublas gemm", [span(a), span(b)], [span(out)]))
        if bound is not None:  # bound: the same product again, whatever the stream
            from gpunet.backend.cublas_capture import BoundGemm  # imports CuPy, as kernels does

            bound.append(BoundGemm(lambda: np.matmul(a, b, out=out) is None, ()))
        np.matmul(a, b, out=out)

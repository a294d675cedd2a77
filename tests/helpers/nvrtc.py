"""NVRTC for the kernels' compile tests, or a skip saying why it is not here."""
from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest

# The double-precision PTX a float32 kernel with a float64 output needs: the
# register, the one rounding of the float32 result to double, the store.
WIDENING_STORE = re.compile(r"(\.reg \.f64|cvt(\.ftz)?\.f64\.f32|st\.global\.f64)\s")


def usable_nvrtc() -> Any:
    """CuPy's NVRTC module with libnvrtc loaded; the test skips, saying why, where
    CuPy or NVRTC is missing (both come with gpunet's ``kernels`` extra)."""
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()  # loads libnvrtc
    except ImportError as exc:
        pytest.skip(f"CuPy is not installed (pip install -e '.[kernels]'): {exc}")
    except Exception as exc:  # a library that is missing or would not load
        pytest.skip(f"NVRTC is not usable here (pip install -e '.[kernels]'): "
                    f"{type(exc).__name__}: {exc}")
    return nvrtc


def compiled_ptx(nvrtc: Any, source: str, file_name: str, options: tuple[str, ...], what: str,
                 *, entry: str | None = None, expression: str | None = None) -> str:
    """The PTX NVRTC makes of ``source`` with ``options``, failing the test
    (naming ``what``) if it does not compile or says anything, or if the PTX has
    no kernel entry named ``entry`` or, given a name ``expression`` (as CuPy's
    RawModule gives one), named as NVRTC lowers it."""
    program = nvrtc.createProgram(source, file_name, (), ())
    try:
        if expression is not None:
            nvrtc.addNameExpression(program, expression)
        try:
            nvrtc.compileProgram(program, options)
        except nvrtc.NVRTCError as exc:
            pytest.fail(f"{what} does not compile: {exc}\n"
                        f"{nvrtc.getProgramLog(program)}\n{source}")
        log = nvrtc.getProgramLog(program).strip("\x00 \n")
        if expression is not None:
            entry = nvrtc.getLoweredName(program, expression)
        ptx = nvrtc.getPTX(program)
    finally:
        nvrtc.destroyProgram(program)
    assert not log, f"{what} compiles with diagnostics:\n{log}\n{source}"
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert re.search(rf"\.entry\s+{re.escape(entry)}\b", ptx)
    return ptx


class PtxasReport(NamedTuple):
    """What ptxas says of a kernel it assembled: per thread, in bytes but registers."""
    registers: int
    stack: int
    spilled: int  # spill stores and loads


def ptxas_report(nvrtc: Any, source: str, expression: str, options: tuple[str, ...],
                 arch: str) -> PtxasReport:
    """``expression``'s kernel of ``source`` compiled by NVRTC to machine code for
    ``arch`` (e.g. "sm_90"), as ptxas reports it (--ptxas-options=--verbose)."""
    program = nvrtc.createProgram(source, "report.cu", (), ())
    try:
        nvrtc.addNameExpression(program, expression)
        nvrtc.compileProgram(program, options + (f"--gpu-architecture={arch}",
                                                 "--ptxas-options=--verbose"))
        log = nvrtc.getProgramLog(program)
    finally:
        nvrtc.destroyProgram(program)
    log = log.decode() if isinstance(log, bytes) else log
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                      log)
    used = re.search(r"Used (\d+) registers", log)
    assert frame and used, f"no ptxas report for {expression}:\n{log}"
    return PtxasReport(int(used[1]), int(frame[1]), int(frame[2]) + int(frame[3]))

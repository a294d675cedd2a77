"""A benchmark's C source built with ``cc`` as a shared library, loaded with ctypes."""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

from gpunet.backend import splitmix


def build(source: Path, folder: Path, flags: list[str],
          signatures: dict[str, list[type]]) -> ctypes.CDLL:
    """``source`` built in ``folder`` with ``flags`` (and gpunet's SplitMix64
    constants GAMMA, MIX1 and MIX2 as -D flags, without fused multiply-adds),
    each function of ``signatures`` given its argument types."""
    compiler = shutil.which("cc")
    if compiler is None:
        raise SystemExit(f"{source.stem}: no C compiler (cc) on PATH")
    library = folder / f"{source.stem}{''.join(flags)}.so"  # a name for each build
    constants = [f"-D{name}={getattr(splitmix, name):#x}ull" for name in ("GAMMA", "MIX1", "MIX2")]
    subprocess.run([compiler, "-O2", "-march=native", "-ffp-contract=off", "-shared", "-fPIC",
                    *constants, *flags, "-o", str(library), str(source), "-lm"], check=True)
    lib = ctypes.CDLL(str(library))
    for name, argtypes in signatures.items():
        getattr(lib, name).argtypes = argtypes
        getattr(lib, name).restype = None
    return lib

"""C for the host, compiled once per machine and kept, as CuPy keeps its kernels.

``load`` builds a C source with the C compiler ($CC, else ``cc``) into
gpunet's cache folder for it, $XDG_CACHE_HOME (default ~/.cache)/gpunet/host-c,
and loads it with ctypes. A library is named by a hash of what makes it (the
source and the files it includes, the flags, the compiler and its version
line), so an edit or another compiler builds anew; it is written beside its
name and renamed into place, so no process loads half of one. Each load marks
its library used (its time stamp); each build removes the libraries no process
has loaded for UNUSED_DAYS and the temporaries of builds killed a day ago or
more, so edits and upgrades do not pile up. Where the folder cannot be
written, the build goes to a temporary folder of the process's own. The flags
leave out ``-march=native`` (a cache in a home shared by machines with other
CPUs stays loadable) and fused multiply-adds (``-ffp-contract=off``: the C
rounds as NumPy does, operation by operation). ``-ftree-vectorize``, given
outright, lets gcc vectorise loops that need an aliasing check or a
remainder, which -O2 alone leaves scalar (gcc 12's "very-cheap" cost model);
lanes of independent elements round as the scalar code does, and gcc keeps
the order of every sum.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from ..files import cache_dir

FLAGS = ("-O2", "-ftree-vectorize", "-ffp-contract=off", "-shared", "-fPIC")
UNUSED_DAYS = 30
DAY = 86_400.0  # seconds


class HostLibraryError(RuntimeError):
    """No library could be built or loaded; the message says why, in one line."""


def compiler() -> tuple[str, str]:
    """(the C compiler's path, its version line); HostLibraryError where there is none."""
    name = os.environ.get("CC") or "cc"
    path = shutil.which(name)
    if path is None:
        raise HostLibraryError(f"no C compiler: {name} is not on PATH")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout.partition("\n")[0]
    except (OSError, subprocess.SubprocessError) as exc:
        raise HostLibraryError(f"the C compiler {path} does not run: {exc}") from exc
    return path, version


def load(source: Path, flags: Sequence[str], signatures: Mapping[str, Sequence[type]],
         includes: Sequence[Path] = ()) -> ctypes.CDLL:
    """``source`` built with ``flags`` (and FLAGS) and loaded, each function of
    ``signatures`` given its argument types and no result; from the cache where
    it was built before with the same ``includes`` (the files it includes).
    HostLibraryError, in one line, where it cannot be."""
    path, version = compiler()
    made_of = b"\0".join([*(f.read_bytes() for f in (source, *includes)),
                          *(f.encode() for f in (*FLAGS, *flags)), path.encode(),
                          version.encode()])
    name = f"{source.stem}-{hashlib.sha256(made_of).hexdigest()[:16]}.so"
    try:
        folder = cache_dir("host-c")
        folder.mkdir(parents=True, exist_ok=True)
        library = _built(folder / name, [path, *FLAGS, *flags, str(source)])
    except OSError:  # an unwritable cache: a build of this process's own
        try:
            with tempfile.TemporaryDirectory(prefix="gpunet-") as folder:
                library = _built(Path(folder) / name, [path, *FLAGS, *flags, str(source)])
                lib = _opened(library)  # the mapping outlives the file
        except OSError as exc:
            raise HostLibraryError(f"{source} cannot be built: {exc}") from exc
    else:
        lib = _opened(library)
    for function, argtypes in signatures.items():
        getattr(lib, function).argtypes = list(argtypes)
        getattr(lib, function).restype = None
    return lib


def _built(library: Path, command: list[str]) -> Path:
    """``library``, built by ``command`` (less its output) unless it exists:
    marked used if it does, its folder pruned if it is new."""
    if library.exists():
        try:
            os.utime(library)
        except OSError:  # a cache shared read-only: used as it is
            pass
        return library
    handle, temporary = tempfile.mkstemp(prefix=f".{library.name}.", dir=library.parent)
    os.close(handle)
    try:
        try:
            done = subprocess.run([*command, "-o", temporary, "-lm"], capture_output=True,
                                  text=True, timeout=300)
        except subprocess.SubprocessError as exc:  # OSError: the caller's
            raise HostLibraryError(f"{command[-1]} does not compile: {exc}") from exc
        if done.returncode != 0:
            first = next((line for line in done.stderr.splitlines() if "error" in line),
                         done.stderr.strip().partition("\n")[0])
            raise HostLibraryError(f"{command[-1]} does not compile: {first}")
        os.replace(temporary, library)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    _prune(library.parent, time.time())
    return library


def _prune(folder: Path, now: float) -> None:
    """Remove from ``folder`` the libraries unused for UNUSED_DAYS, and the
    temporaries (".<library>.<random>") older than a day: younger ones may be
    another process's build under way."""
    for path in folder.iterdir():
        temporary = path.name.startswith(".") and ".so." in path.name
        try:
            age = now - path.stat().st_mtime
            if (temporary and age > DAY) or (path.suffix == ".so" and age > UNUSED_DAYS * DAY):
                path.unlink()
        except OSError:  # gone already (another process pruning) or not ours to remove
            pass


def _opened(library: Path) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(str(library))
    except OSError as exc:
        raise HostLibraryError(f"{library} does not load: {exc}") from exc

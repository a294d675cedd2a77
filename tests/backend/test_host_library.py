"""``host_library.load``: C built once into the cache and loaded, rebuilt when
what makes it changes, the cache pruned of what no process has used, built for
the process alone where the cache cannot be written, and every failure one line
that says why."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import time

import pytest

from gpunet.backend import host_library
from gpunet.backend.host_library import HostLibraryError, load

if shutil.which("cc") is None:
    pytest.skip("no C compiler (cc) on PATH", allow_module_level=True)

SOURCE = "int twice(int x) { return 2 * x; }\n"
SIGNATURES = {"twice": [ctypes.c_int]}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder ($XDG_CACHE_HOME/gpunet/host-c); the C compiler is cc."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CC", raising=False)
    return tmp_path / "xdg" / "gpunet" / "host-c"


@pytest.fixture
def builds(monkeypatch):
    """The library builds the compiler makes (its runs with -shared)."""
    made, run = [], subprocess.run

    def counted(command, *args, **kwargs):
        if "-shared" in command:
            made.append(command)
        return run(command, *args, **kwargs)

    monkeypatch.setattr(host_library.subprocess, "run", counted)
    return made


def source(tmp_path, text=SOURCE, name="twice.c"):
    path = tmp_path / name
    path.write_text(text)
    return path


def call_twice(lib) -> int:
    lib.twice.restype = ctypes.c_int
    return lib.twice(21)


def test_a_library_is_built_once_and_then_loaded_from_the_cache(tmp_path, cache, builds):
    c = source(tmp_path)
    assert call_twice(load(c, [], SIGNATURES)) == 42
    assert call_twice(load(c, [], SIGNATURES)) == 42
    assert len(builds) == 1
    kept = list(cache.iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("twice-") and kept[0].suffix == ".so"


def test_a_new_source_or_flags_build_anew(tmp_path, cache, builds):
    c = source(tmp_path)
    load(c, [], SIGNATURES)
    load(c, ["-DUNUSED=1"], SIGNATURES)
    c.write_text(SOURCE.replace("2 * x", "x + x"))
    assert call_twice(load(c, [], SIGNATURES)) == 42
    assert len(builds) == 3 and len(list(cache.iterdir())) == 3


def test_an_included_file_that_changed_builds_anew(tmp_path, cache, builds):
    header = source(tmp_path, "#define FACTOR 2\n", "factor.h")
    c = source(tmp_path, '#include "factor.h"\nint twice(int x) { return FACTOR * x; }\n')
    assert call_twice(load(c, [], SIGNATURES, includes=[header])) == 42
    header.write_text("#define FACTOR 3\n")
    assert call_twice(load(c, [], SIGNATURES, includes=[header])) == 63
    assert len(builds) == 2


def aged(path, days):
    """``path`` written (empty) with a time stamp ``days`` ago."""
    path.write_bytes(b"")
    then = time.time() - days * host_library.DAY
    os.utime(path, (then, then))
    return path


def test_a_build_removes_libraries_unused_for_30_days_and_temporaries_of_a_day(tmp_path, cache):
    cache.mkdir(parents=True)
    unused = aged(cache / "old-0123456789abcdef.so", host_library.UNUSED_DAYS + 1)
    recent = aged(cache / "other-0123456789abcdef.so", host_library.UNUSED_DAYS - 1)
    killed = aged(cache / ".twice-0123456789abcdef.so.k3j2", 2)
    building = aged(cache / ".twice-fedcba9876543210.so.x9q1", 0.5)
    foreign = aged(cache / "notes.txt", 400)
    load(source(tmp_path), [], SIGNATURES)
    kept = {path.name for path in cache.iterdir()}
    assert unused.name not in kept and killed.name not in kept
    assert {recent.name, building.name, foreign.name} <= kept
    assert any(name.startswith("twice-") and name.endswith(".so") for name in kept)


def test_a_library_loaded_from_the_cache_is_marked_used_and_kept(tmp_path, cache, builds):
    c = source(tmp_path)
    load(c, [], SIGNATURES)
    (library,) = cache.iterdir()
    then = time.time() - (host_library.UNUSED_DAYS + 1) * host_library.DAY
    os.utime(library, (then, then))
    assert call_twice(load(c, [], SIGNATURES)) == 42  # from the cache: marked used
    assert time.time() - library.stat().st_mtime < host_library.DAY
    load(c, ["-DUNUSED=1"], SIGNATURES)  # a build, which prunes
    assert library.exists() and len(builds) == 2


def test_a_cache_whose_libraries_cannot_be_marked_is_used_as_it_is(tmp_path, cache, builds,
                                                                   monkeypatch):
    c = source(tmp_path)
    load(c, [], SIGNATURES)

    def refused(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(host_library.os, "utime", refused)
    assert call_twice(load(c, [], SIGNATURES)) == 42
    assert len(builds) == 1


def test_an_unwritable_cache_builds_for_the_process_and_leaves_nothing(tmp_path, monkeypatch,
                                                                       builds):
    """The cache's path is a file: the library is built in a temporary folder,
    loaded, and the folder removed; the file is left as it was."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("mine")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert call_twice(load(source(tmp_path), [], SIGNATURES)) == 42
    assert blocker.read_text() == "mine" and len(builds) == 1
    assert not builds[0][-1].startswith(str(blocker))


def test_no_folder_to_build_in_is_one_line(tmp_path, monkeypatch):
    """Neither the cache nor a temporary folder can be written: HostLibraryError
    (which the host replay turns into its fallback), not an OSError."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("mine")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(host_library.tempfile, "tempdir", str(blocker))  # temporaries' folder
    with pytest.raises(HostLibraryError, match="cannot be built: "):
        load(source(tmp_path), [], SIGNATURES)


def test_no_compiler_is_one_line_naming_it(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("CC", "no-such-cc")
    with pytest.raises(HostLibraryError, match="^no C compiler: no-such-cc is not on PATH$"):
        load(source(tmp_path), [], SIGNATURES)
    assert not cache.exists()


def test_a_source_that_does_not_compile_is_one_line_and_leaves_no_file(tmp_path, cache):
    c = source(tmp_path, "int twice(int x) { return 2 * y; }\n")
    with pytest.raises(HostLibraryError) as raised:
        load(c, [], SIGNATURES)
    message = str(raised.value)
    assert message.startswith(f"{c} does not compile: ") and "\n" not in message
    assert "undeclared" in message  # the compiler's own line
    assert list(cache.iterdir()) == []  # no library, no temporary

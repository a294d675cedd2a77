"""scripts/host_sanitize.sh runs every test module that runs kernels on the host, with
the sanitizers' flags, and fails, printing the reports, where a sanitizer wrote one. The script runs here with stand-ins for python3 and g++."""
import os
import re
import stat
import subprocess
from pathlib import Path

from helpers.paths import ROOT

SCRIPT = ROOT / "scripts" / "host_sanitize.sh"
HOST_RUNNERS = re.compile(r"helpers\.(cupy_on_host|block_kernel_source|kernel_source)\b")


def test_it_runs_every_test_module_that_runs_kernels_on_the_host():
    named = re.findall(r"tests/\w+/test_\w+\.py", SCRIPT.read_text())
    on_host = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                     if HOST_RUNNERS.search(p.read_text()) and "nvrtc" not in p.name)
    assert sorted(named) == on_host


def stand_ins(folder: Path, python: str, asan: bool = True) -> dict[str, str]:
    """An environment whose python3 runs ``python`` (bash) and whose g++ names a
    libasan.so (one that exists where ``asan``)."""
    library = folder / "libasan.so"
    if asan:
        library.write_bytes(b"")
    for name, text in (("python3", python), ("g++", f"echo {library}")):
        path = folder / name
        path.write_text(f"#!/usr/bin/env bash\n{text}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "OUT": str(folder / "out")}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_it_gives_pytest_the_sanitizers_flags_and_its_options(tmp_path):
    done = run(stand_ins(tmp_path, 'echo "$GPUNET_HOST_CXXFLAGS" "$@"'), "-n", "2")
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    for flag in ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-n", "2",
                 "tests/backend/test_block_kernels_on_host.py"):
        assert flag in words


def test_a_sanitizers_report_fails_the_run_and_is_printed(tmp_path):
    # a sanitizer writes its report to log_path.PID, as ASAN_OPTIONS names it
    python = ('log=${ASAN_OPTIONS#*log_path=}; log=${log%%:*}\n'
              'echo "ERROR: AddressSanitizer: heap-buffer-overflow" > "$log.123"')
    done = run(stand_ins(tmp_path, python))
    assert done.returncode == 1
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in done.stdout


def test_asans_warning_about_fibers_is_not_a_finding(tmp_path):
    python = ('log=${ASAN_OPTIONS#*log_path=}; log=${log%%:*}\n'
              'echo "WARNING: ASan doesn\'t fully support makecontext/swapcontext" > "$log.9"')
    done = run(stand_ins(tmp_path, python))
    assert done.returncode == 0 and "WARNING" not in done.stdout


def test_pytests_failure_is_its_exit_status(tmp_path):
    assert run(stand_ins(tmp_path, "exit 2")).returncode == 2


def test_a_g_plus_plus_without_libasan_is_named(tmp_path):
    done = run(stand_ins(tmp_path, "exit 0", asan=False))
    assert done.returncode == 1
    assert done.stdout.strip() == f"host_sanitize: g++ has no libasan.so ({tmp_path}/libasan.so)"

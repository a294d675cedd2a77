"""Running the gpunet command: as the installed console script (``gpunet_cli``) or
through ``main`` in this process (``gpunet_main``), and checking how it failed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpunet.cli import main

# The console script installed beside the interpreter running the tests, not another
# install's first on PATH (a pyenv shim, say, whose Python lacks the mpi extra).
SCRIPT = shutil.which("gpunet", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "gpunet"]
SMALL = ["--dataset", "fashion-mnist", "--train-subset", "512", "--test-subset", "256",
         "--batch-size", "64", "--backend", "numpy", "--quiet"]


def gpunet_cli(*args: str, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):  # scripts/mutation.sh
        pytest.skip("the installed console script runs the unmutated source: no mutant to catch")
    done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=cwd, stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def gpunet_main(capsys, *args: str) -> subprocess.CompletedProcess:
    """``gpunet ARGS`` run by ``main`` in this process, reported as ``gpunet_cli`` reports a
    process: its exit status and what it wrote, with no traceback in it."""
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    return subprocess.CompletedProcess(["gpunet", *args], status, out, err)


def fails(done: subprocess.CompletedProcess, status: int, message: str) -> None:
    """``done`` exited ``status`` with ``message`` in its last line of standard error."""
    assert done.returncode == status, done.stdout + done.stderr
    assert message in done.stderr.strip().splitlines()[-1], done.stderr

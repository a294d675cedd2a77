"""Without a GPU, the reason the GPU tests skip is reported once, with their count."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpunet.backend import cuda_status


def test_gpu_skips_are_reported_once():
    status = cuda_status()
    if status.usable:
        pytest.skip("a CUDA device is usable here: no GPU test skips")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider",
                           "tests/test_functional.py", "tests/layers/test_layers.py"],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    lines = [line for line in done.stdout.splitlines() if status.reason in line]
    assert len(lines) == 1, done.stdout
    assert re.fullmatch(rf"SKIPPED \[\d+\] tests/conftest.py: no usable CUDA device: "
                        rf"{re.escape(status.reason)}", lines[0]), lines[0]


def test_without_the_kernels_extra_the_kernel_checks_name_it(tmp_path):
    (tmp_path / "cupy.py").write_text(  # what an absent package raises
        "raise ModuleNotFoundError(\"No module named 'cupy'\", name='cupy')\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider",
                           "tests/backend/test_nvrtc.py", "tests/backend/test_kernels_on_host.py"],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert done.returncode == 0, done.stdout
    assert skips and all("pip install -e '.[kernels]'" in line for line in skips
                         if "CUDA device" not in line), done.stdout

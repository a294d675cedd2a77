"""scripts/gpu_check.sh tells "no device" (exit 0) from "a device gpunet cannot use"
and "gpunet does not import" (exit 1), with a stand-in cupy or numpy first on
PYTHONPATH; its `pytest -m gpu` collects without the optional hypothesis; every
module it runs exists."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpunet.backend import cuda_status

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"

# A cupy whose driver is there (CUDA 12.8) but refuses to count devices.
BROKEN_DEVICE = '''
class CUDARuntimeError(RuntimeError):
    status = 803

class runtime:
    driverGetVersion = staticmethod(lambda: 12080)
    runtimeGetVersion = staticmethod(lambda: 12090)

    @staticmethod
    def getDeviceCount():
        raise CUDARuntimeError("cudaErrorSystemDriverMismatch: system has unsupported display "
                               "driver / cuda driver combination")

class cuda:
    runtime = runtime
'''


def run_with(tmp_path: Path, modules: dict[str, str],
             command: list[str]) -> subprocess.CompletedProcess:
    """``command`` run from the checkout, with ``modules`` ({name: source})
    importable ahead of site-packages."""
    for name, source in modules.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OUT": str(tmp_path / "out")}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=SCRIPT.parents[1])


def gpu_check(tmp_path: Path, modules: dict[str, str]) -> subprocess.CompletedProcess:
    return run_with(tmp_path, modules, ["bash", str(SCRIPT)])


@pytest.mark.skipif(cuda_status().device, reason="this machine has a CUDA device")
def test_no_device_is_not_a_failure(tmp_path):
    done = gpu_check(tmp_path, {})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("no CUDA device here: GPU checks not run")


def test_a_device_gpunet_cannot_use_fails(tmp_path):
    done = gpu_check(tmp_path, {"cupy": BROKEN_DEVICE})
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("auto -> numpy: no usable CUDA device: cudaErrorSystemDriverMismatch: system has "
            "unsupported display driver / cuda driver combination") in done.stdout
    assert "GPU check failed: gpunet cannot use this machine's CUDA device" in done.stdout


def test_gpunet_that_does_not_import_fails(tmp_path):
    done = gpu_check(tmp_path, {"numpy": "raise ImportError('numpy is broken here')"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gpunet does not import: ImportError: numpy is broken here" in done.stdout


def test_gpu_tests_collect_without_hypothesis(tmp_path):
    """As where hypothesis is not installed: no module, and no pytest plugin of its own."""
    absent = "raise ModuleNotFoundError(\"No module named 'hypothesis'\", name='hypothesis')"
    done = run_with(tmp_path, {"hypothesis": absent},
                    [sys.executable, "-m", "pytest", "-m", "gpu", "--co", "-q", "-rs",
                     "-p", "no:cacheprovider", "-p", "no:hypothesispytest"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hypothesis is not installed" in done.stdout


def test_every_module_the_script_runs_exists():
    modules = re.findall(r"python3 -m ([\w.]+)", SCRIPT.read_text())
    assert "gpunet.bench.targets" in modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module


def test_the_targets_run_from_the_installed_package(tmp_path):
    """Outside the checkout: the speed targets are gpunet's own module."""
    (tmp_path / "results.json").write_text(json.dumps({"results": []}))
    done = subprocess.run([sys.executable, "-m", "gpunet.bench.targets", "results.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("not measured") == 4  # three epoch targets and the kernels

"""The GPU check (scripts/gpu_check.sh, gpunet/bench/gpu_check.py) tells "no device"
(exit 0) from a broken path (exit 1: a device gpunet cannot use, gpunet that does not
import, a failed test, a stage that crashed or hung) and from a slow one (exit 4: only
speed targets missed), runs every stage after the probe whatever the others did, and
writes every figure to one JSON file. The script runs with a stand-in cupy or numpy
first on PYTHONPATH; the stages are stand-in commands."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpunet.backend import cuda_status
from gpunet.bench import gpu_check
from gpunet.bench.gpu_check import BROKEN, PASSED, SLOW, Stage

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
STAGES = ["probe", "info", "tests", "bench", "targets"]

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


def script(tmp_path: Path, modules: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict]:
    """The script's run and the JSON it wrote."""
    done = run_with(tmp_path, modules, ["bash", str(SCRIPT)])
    return done, json.loads((tmp_path / "out" / "gpu-check.json").read_text())


def statuses(record: dict) -> dict[str, str]:
    return {stage["name"]: stage["status"] for stage in record["stages"]}


@pytest.mark.skipif(cuda_status().device, reason="this machine has a CUDA device")
def test_no_device_is_not_a_failure(tmp_path):
    done, record = script(tmp_path, {})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("no CUDA device here: GPU checks not run")
    assert (record["verdict"], record["exit_code"]) == ("no device", 0)
    assert statuses(record) == {"probe": "no device", "info": "not run", "tests": "not run",
                                "bench": "not run", "targets": "not run"}
    assert record["environment"]["cuda"]["usable"] is False


def test_a_device_gpunet_cannot_use_fails(tmp_path):
    done, record = script(tmp_path, {"cupy": BROKEN_DEVICE})
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("auto -> numpy: no usable CUDA device: cudaErrorSystemDriverMismatch: system has "
            "unsupported display driver / cuda driver combination") in done.stdout
    assert "GPU check failed: gpunet cannot use this machine's CUDA device" in done.stdout
    assert (record["verdict"], statuses(record)["probe"]) == ("broken", "failed")


def test_gpunet_that_does_not_import_fails(tmp_path):
    done, record = script(tmp_path, {"numpy": "raise ImportError('numpy is broken here')"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gpunet does not import: ImportError: numpy is broken here" in done.stdout
    assert record["environment"] is None and record["stages"][0]["exit_code"] == 2


def test_gpu_tests_collect_without_hypothesis(tmp_path):
    """As where hypothesis is not installed: no module, and no pytest plugin of its own."""
    absent = "raise ModuleNotFoundError(\"No module named 'hypothesis'\", name='hypothesis')"
    done = run_with(tmp_path, {"hypothesis": absent},
                    [sys.executable, "-m", "pytest", "-m", "gpu", "--co", "-q", "-rs",
                     "-p", "no:cacheprovider", "-p", "no:hypothesispytest"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hypothesis is not installed" in done.stdout


def test_every_module_the_check_runs_exists(tmp_path):
    modules = re.findall(r"python3 -m ([\w.]+)", SCRIPT.read_text())
    for stage in gpu_check.stages(tmp_path):
        modules += [stage.command[2]] if stage.command[1] == "-m" else []
    assert {"gpunet.bench.gpu_check", "gpunet", "pytest"} <= set(modules)
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
    assert sum(stage.timeout_s for stage in gpu_check.stages(tmp_path)) \
        + gpu_check.probe_stage(tmp_path).timeout_s <= 290  # the script stops it at 300


def test_the_targets_run_from_the_installed_package(tmp_path):
    """Outside the checkout: the speed targets are gpunet's own module."""
    (tmp_path / "results.json").write_text(json.dumps({"results": []}))
    done = subprocess.run([sys.executable, "-m", "gpunet.bench.targets", "results.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("not measured") == 4  # three epoch targets and the kernels


# The stages stood in for: each a short Python command.

def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def epoch(rate, peer="gpunet", backend="cupy"):
    return {"case": "train", "what": "epoch", "peer": peer, "backend": backend,
            "model": "deep", "batch_size": 128, "samples_per_s": rate}


def results(graph_rate=7_000_000, peers=("gpunet", "gpunet graph")) -> dict:
    rates = {"gpunet": 1_500_000, "gpunet graph": graph_rate}
    return {"results": [*(epoch(rates[peer], peer) for peer in peers),
                        epoch(1_000_000, "torch", "cuda"),
                        *({"case": "op", "op": "sigmoid", "backend": "cupy", "size": 10**6,
                           "variant": variant, "median_s": s}
                          for variant, s in (("kernel", 1.0), ("expression", 1.5)))]}


def check(tmp_path: Path, tests: str = "pass", measured: dict | None = None,
          bench: str = "", tests_limit_s: int = 10) -> tuple[int, dict]:
    """run_check with stand-in stages: a passing probe and info, a tests stage
    running ``tests`` (Python) within ``tests_limit_s``, and a bench stage that
    runs ``bench``, then writes ``measured`` where the targets read it (unless None)."""
    out = tmp_path / "out"
    write = ("import json, pathlib, sys\n" + bench + "\nif sys.argv[2] != 'null':\n"
             "    p = pathlib.Path(sys.argv[1]); p.parent.mkdir(parents=True, exist_ok=True)\n"
             "    p.write_text(sys.argv[2])")
    stages = [Stage("info", python("print('gpunet 0.1.0')"), 10, None),
              Stage("tests", python(tests), tests_limit_s, 15),
              Stage("bench", python(write, str(out / "bench" / "results.json"),
                                    json.dumps(measured)), 10)]
    code = gpu_check.run_check(out, Stage("probe", python("print('auto -> cupy')"), 10, None),
                               stages)
    return code, json.loads((out / "gpu-check.json").read_text())


def test_every_target_met_passes(tmp_path, capsys):
    code, record = check(tmp_path, measured=results())
    assert (code, record["verdict"]) == (PASSED, "passed")
    assert statuses(record) == dict.fromkeys(STAGES, "passed")
    assert record["info"] == ["gpunet 0.1.0"]
    assert record["benchmark"] == results()
    out = capsys.readouterr().out
    assert "## Speed targets\n" in out and "missed" not in out and "## Broken" not in out
    assert out.strip().endswith("GPU check: passed (exit 0)")


def test_only_targets_missed_is_slow_with_its_own_block(tmp_path, capsys):
    code, record = check(tmp_path, measured=results(graph_rate=3_000_000))
    assert (code, record["verdict"]) == (SLOW, "slow") and SLOW not in (PASSED, BROKEN)
    assert statuses(record)["targets"] == "missed"
    out = capsys.readouterr().out
    missed = out.split("## Speed targets missed\n")[1].split("##")[0].strip().splitlines()
    assert len(missed) == 1 and missed[0].split()[:3] == ["FAIL", "gpunet", "graph,"]
    assert "(target 15 ms)" in missed[0]
    assert "## Broken" not in out and out.strip().endswith("GPU check: slow (exit 4)")
    graph = next(t for t in record["targets"] if t["what"].startswith("gpunet graph,"))
    assert (graph["measured"], graph["limit"], graph["met"]) == (20.0, 15.0, False)


def test_a_failing_test_stage_still_runs_the_rest_and_is_broken(tmp_path, capsys):
    """Broken wins over slow: exit 1, with the targets judged all the same."""
    code, record = check(tmp_path, "print('1 failed, 9 passed'); raise SystemExit(1)",
                         results(graph_rate=3_000_000))
    assert (code, record["verdict"]) == (BROKEN, "broken")
    assert statuses(record) == {"probe": "passed", "info": "passed", "tests": "failed",
                                "bench": "passed", "targets": "missed"}
    tests = record["stages"][2]
    assert (tests["exit_code"], tests["reason"]) == (1, "1 failed, 9 passed")
    out = capsys.readouterr().out
    assert "## Speed targets missed" in out
    assert "## Broken\ntests: failed: 1 failed, 9 passed" in out
    assert out.strip().endswith("GPU check: broken (exit 1)")


def test_a_hung_stage_is_stopped_at_its_limit_and_the_rest_runs(tmp_path):
    start = time.perf_counter()
    code, record = check(tmp_path, "import time; time.sleep(60)", results(), tests_limit_s=1)
    assert time.perf_counter() - start < 10
    assert (code, statuses(record)["tests"], statuses(record)["targets"]) == (
        BROKEN, "timed out", "passed")
    assert record["stages"][2]["reason"] == "timed out after 1 s"


def test_a_bench_that_crashes_leaves_the_targets_unjudged(tmp_path):
    code, record = check(tmp_path, measured=None, bench="raise RuntimeError('cuBLAS failed')")
    assert code == BROKEN
    assert statuses(record)["bench"] == statuses(record)["targets"] == "failed"
    assert record["stages"][3]["reason"] == "RuntimeError: cuBLAS failed"
    assert record["stages"][4]["reason"].startswith("no benchmark results")
    assert record["benchmark"] is None and record["targets"] == []


def test_a_bench_that_passes_without_results_is_broken(tmp_path):
    code, record = check(tmp_path, measured=None)
    assert (code, statuses(record)["bench"], statuses(record)["targets"]) == (
        BROKEN, "passed", "failed")


def test_results_without_gpunet_s_own_epoch_are_broken(tmp_path):
    """A CuPy run must measure the graph's epoch; PyTorch's comparison may be absent."""
    code, record = check(tmp_path, measured=results(peers=("gpunet",)))
    assert (code, statuses(record)["targets"]) == (BROKEN, "failed")
    assert record["stages"][4]["reason"].startswith("not measured: gpunet graph, deep model")


def test_pytest_counts_come_from_its_junit_xml(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\ndef test_a(): pass\ndef test_b(): assert False\n"
        "@pytest.mark.skip(reason='no')\ndef test_c(): pass\n")
    xml = tmp_path / "pytest.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={xml}", str(tmp_path / "test_x.py")], cwd=tmp_path,
                   capture_output=True, timeout=60)
    assert gpu_check.pytest_counts(xml) == {"passed": 1, "failed": 1, "errors": 0, "skipped": 1}
    assert gpu_check.pytest_counts(tmp_path / "missing.xml") is None


def test_a_stage_that_cannot_start_fails(tmp_path):
    outcome = gpu_check.run_stage(Stage("bench", [str(tmp_path / "absent")], 5), tmp_path)
    assert (outcome.status, outcome.exit_code) == ("failed", -1)
    assert outcome.reason.startswith(f"cannot start {tmp_path / 'absent'}: ")

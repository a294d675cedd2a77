"""The gpunet command: experiments, options, and one-line errors for bad values."""
import re
import subprocess
import sys

import pytest

import gpunet

from gpunet.cli import main


def test_xor_command(capsys):
    assert main(["xor", "--backend", "numpy", "--epochs", "3000", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "backend: numpy" in out and "solved" in out and "xor(1, 1)" in out
    assert re.search(r"xor\(1, 1\) = [+-]\d\.\d{3}  \(target 0\)", out)


def test_xor_prints_its_parameters_rounded(capsys):
    """Rounded to 3 decimals, as written: 0.1, not float32's 0.10000000149011612."""
    assert main(["xor", "--backend", "numpy", "--epochs", "10", "--quiet"]) == 0
    params = [line for line in capsys.readouterr().out.splitlines() if line.startswith("param ")]
    assert len(params) == 4
    numbers = re.findall(r"-?\d+\.\d+", " ".join(params))
    assert len(numbers) == 9 and all(len(number.split(".")[1]) <= 3 for number in numbers)


def test_fizzbuzz_command(capsys):
    assert main(["fizzbuzz", "--backend", "numpy", "--epochs", "2", "--batch-size", "32",
                 "--seed", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy (1..100):" in out and "train accuracy" in out


def test_progress_bar_shows_loss_and_accuracy(capsys):
    main(["fizzbuzz", "--backend", "numpy", "--epochs", "2", "--batch-size", "64"])
    err = capsys.readouterr().err
    assert "fb loss:" in err and "acc:" in err


def test_auto_backend_says_why(capsys, monkeypatch):
    monkeypatch.delenv("GPUNET_BACKEND", raising=False)
    main(["xor", "--epochs", "1", "--quiet"])
    assert "auto ->" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["xor", "--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["xor", "--epochs", "-2"], "--epochs: must be at least 0, got -2"),
    (["fizzbuzz", "--seed", "x"], "--seed: expected an integer, got 'x'"),
    (["xor", "--backend", "tpu"], "--backend: invalid choice: 'tpu'"),
    (["fizzbuzz", "--loss", "hinge"], "--loss: invalid choice: 'hinge'"),
])
def test_bad_option_values(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_console_script_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "gpunet", "xor", "--epochs", "5", "--quiet",
                           "--backend", "numpy"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "final epoch loss" in done.stdout


def test_info_without_a_device(capsys, monkeypatch):
    from gpunet.backend import CudaStatus
    from gpunet.cli import info
    monkeypatch.setattr(info, "cuda_status", lambda: CudaStatus(False, "no CUDA device here"))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numpy backend: available" in out and "cupy backend: unavailable: " in out


@pytest.mark.parametrize("lib", ["no C compiler: cc is not on PATH", None])
def test_info_says_whether_the_numpy_backends_c_is_built(capsys, monkeypatch, lib):
    from gpunet.backend import host_c
    if lib is None and isinstance(host_c.library(), str):
        pytest.skip(f"no host C: {host_c.library()}")
    if lib is not None:
        monkeypatch.setattr(host_c, "library", lambda: lib)
    assert main(["info"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("numpy backend's C"))
    assert line.endswith(": unavailable: no C compiler: cc is not on PATH" if lib else ".so")


def test_info_with_a_device(capsys, monkeypatch):
    from gpunet.backend import CudaStatus
    from gpunet.cli import info
    monkeypatch.setattr(info, "cuda_status", lambda: CudaStatus(True, "usable"))
    monkeypatch.setattr(info, "device_properties", lambda: {
        "name": "NVIDIA H200", "memory_bytes": 141 * 2 ** 30, "compute_capability": "9.0",
        "runtime": "12.9", "driver": "13.0"})
    assert main(["info"]) == 0
    assert ("cupy backend: available: NVIDIA H200, 141.0 GiB, compute capability 9.0, "
            "CUDA runtime 12.9, driver 13.0") in capsys.readouterr().out


@pytest.mark.parametrize("case", ["no cublas", "older major driver", "wrong kernel"])
def test_unusable_cuda_is_one_line_everywhere(capsys, monkeypatch, case):
    """A missing CUDA library, an old driver, a device that fails its test kernel:
    get_backend raises BackendUnavailable, --backend cupy exits 2, info says why."""
    import gpunet.backend as backends
    from gpunet.backend.cuda_probe import probe_cuda
    from helpers.cuda_cases import CASES
    cupy, *_, reason = CASES[case]
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(backends, "_cuda_status", probe_cuda())
    monkeypatch.setattr(backends, "_instances", {})
    with pytest.raises(gpunet.BackendUnavailable) as raised:
        gpunet.get_backend("cupy")
    assert str(raised.value) == f"the 'cupy' backend is unavailable: {reason}"
    assert main(["xor", "--backend", "cupy", "--epochs", "1", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"gpunet: error: {raised.value}\n" and reason in captured.err
    assert main(["info"]) == 0
    assert f"cupy backend: unavailable: {reason}" in capsys.readouterr().out

"""Why CuPy cannot run, in one line, for each way it fails: a stand-in cupy
module (NumPy arrays) over a table of driver and runtime versions and failing steps."""
import sys
import types

import pytest

from gpunet.backend.cuda_probe import STEPS, device_properties, probe_cuda
from helpers.cuda_cases import CASES, fake_cupy


@pytest.mark.parametrize("case", CASES)
def test_probe_reasons(monkeypatch, case):
    cupy, usable, device, expected = CASES[case]
    monkeypatch.setitem(sys.modules, "cupy", cupy)  # None makes `import cupy` fail
    status = probe_cuda()
    assert (status.usable, status.device, status.reason) == (usable, device, expected)


def test_every_step_has_a_failing_case():
    reasons = " ".join(expected for *_, expected in CASES.values())
    for what, _ in STEPS:
        assert f"{what} failed on device 0" in reasons


@pytest.mark.parametrize("name", [b"Fake GPU", "Fake GPU"])
def test_device_properties(monkeypatch, name):
    """The device's name, whether CuPy gives it as bytes or as a str."""
    cupy = fake_cupy()
    properties = cupy.cuda.runtime.getDeviceProperties
    monkeypatch.setattr(cupy.cuda.runtime, "getDeviceProperties",
                        lambda device: {**properties(device), "name": name})
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    assert device_properties() == {"name": "Fake GPU", "memory_bytes": 2 ** 30,
                                   "compute_capability": "9.0", "runtime": "12.9",
                                   "driver": "12.8"}


def test_kernels_are_built_from_their_specs(monkeypatch):
    """Each spec's CUDA name is gpunet_<operation>, and CuPy gets its four fields in order."""
    from gpunet.backend.kernels import KERNELS, build
    built = []
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(
        ElementwiseKernel=lambda *fields: built.append(fields)))
    for name, spec in KERNELS.items():
        assert spec.name == f"gpunet_{name}"
        build(spec)
        assert built[-1] == (spec.in_params, spec.out_params, spec.operation, spec.name)

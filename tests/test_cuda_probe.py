"""Why CuPy cannot run, in one line, for each way it fails (with a stand-in cupy module)."""
import sys
import types

import pytest

from gpunet.backend.cuda_probe import probe_cuda


def fake_cupy(device_count=1, driver=12040, runtime=12040, count_error=None, kernel_error=None):
    def raise_or(value, error):
        def call(*_):
            if error:
                raise error
            return value
        return call

    runtime_api = types.SimpleNamespace(
        getDeviceCount=raise_or(device_count, count_error),
        driverGetVersion=lambda: driver, runtimeGetVersion=lambda: runtime,
        getDeviceProperties=lambda i: {"name": b"Fake GPU"})

    class Array:
        def __mul__(self, other):
            if kernel_error:
                raise kernel_error
            return self

        def sum(self):
            return self

        def get(self):
            return 12.0

    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime_api),
                                 float32="float32", arange=lambda *a, **k: Array())


@pytest.mark.parametrize("cupy, expected", [
    (None, "CuPy is not installed"),
    (fake_cupy(count_error=RuntimeError("cudaErrorNoDevice:\n no CUDA-capable device")),
     "no usable CUDA driver or device: cudaErrorNoDevice: no CUDA-capable device"),
    (fake_cupy(device_count=0), "no CUDA device is visible"),
    (fake_cupy(driver=11080, runtime=12040),
     "CUDA driver too old: driver supports CUDA 11.8, CuPy was built for CUDA 12.4"),
    (fake_cupy(kernel_error=RuntimeError("CUDA_ERROR_NO_BINARY_FOR_GPU")),
     "a test kernel failed on device 0: CUDA_ERROR_NO_BINARY_FOR_GPU"),
    (fake_cupy(), "CUDA device 0 (Fake GPU) is usable"),
])
def test_probe_reasons(monkeypatch, cupy, expected):
    monkeypatch.setitem(sys.modules, "cupy", cupy)  # None makes `import cupy` fail
    status = probe_cuda()
    assert status.usable == expected.endswith("is usable")
    assert expected in status.reason and "\n" not in status.reason

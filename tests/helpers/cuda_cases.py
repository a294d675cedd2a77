"""A stand-in cupy module (NumPy arrays) and the table of ways CuPy fails that the
CUDA probe must each tell in one line: name -> (cupy, usable, device present, reason)."""
import types

import numpy as np

from gpunet.backend.cuda_probe import INSTALL


class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def fake_cupy(driver=12080, runtime=12090, devices=1, count_error=None, fail=None,
              wrong=None, driver_error=None):
    """A cupy module whose driver reports ``driver``, built for ``runtime``, with
    ``devices`` devices (or ``count_error`` on counting them); the step named
    ``fail`` ("kernel", "matmul", "argsort") raises that error, the step named
    ``wrong`` gives a wrong answer."""
    def step(name, compute):
        def call(*args, **kwargs):
            if fail and fail[0] == name:
                raise fail[1]
            result = compute(*args, **kwargs)
            return result + 1 if wrong == name else result
        return call

    def device_count():
        if count_error:
            raise count_error
        return devices

    def driver_version():
        if driver_error:
            raise driver_error
        return driver

    def properties(device):
        assert device == 0, "only device 0 is probed"
        return {"name": b"Fake GPU", "totalGlobalMem": 2 ** 30, "major": 9, "minor": 0}

    def asarray(values, *, dtype):  # as the probe must call it: a dtype always given
        return np.asarray(values, dtype)

    def argsort(x, kind=None):  # CuPy's rule (cupy/_core/core.pyx, _check_kind_sort)
        assert x.dtype == np.uint64, "shuffles sort uint64 random bits"
        if kind not in (None, "stable"):
            raise ValueError("kind can only be None or 'stable'")
        return np.argsort(x, kind="stable")

    def sigmoid(x):
        assert x.dtype == np.float32, "the kernel is probed in float32, as training runs it"
        with np.errstate(over="ignore"):
            return 1 / (1 + np.exp(-x))

    def matmul(a, b):
        assert a.dtype == b.dtype == np.float32, "an integer product would not use cuBLAS"
        return np.matmul(a, b)

    class ElementwiseKernel:
        def __init__(self, in_params, out_params, operation, name):
            assert name == "gpunet_sigmoid"

        __call__ = staticmethod(step("kernel", sigmoid))

    runtime_api = types.SimpleNamespace(
        driverGetVersion=driver_version, runtimeGetVersion=lambda: runtime,
        getDeviceCount=device_count, getDeviceProperties=properties)
    return types.SimpleNamespace(
        cuda=types.SimpleNamespace(runtime=runtime_api), float32=np.float32, uint64=np.uint64,
        asarray=asarray, arange=lambda n, *, dtype: np.arange(n, dtype=dtype),
        asnumpy=np.asarray, ElementwiseKernel=ElementwiseKernel,
        matmul=step("matmul", matmul),
        argsort=step("argsort", argsort))


CUBLAS_MISSING = ImportError('Failure finding "libcublasLt.so.13 or libcublasLt.so.12": '
                             'No such file:\n libcublasLt.so.13 or libcublasLt.so.12')


NO_HEADERS = RuntimeError("Failed to find CUDA headers. Please install CUDA toolkit headers "
                          "(e.g., pip install cupy-cuda12x[ctk]) or specify CUDA_PATH "
                          "environment variable.")


# (cupy, usable, device present, what the reason says)
CASES = {
    "no cupy": (None, False, False,  # ImportError: "import of cupy halted; None in sys.modules"
                f"CuPy is not installed (import of cupy halted; None in sys.modules); {INSTALL}"),
    "no driver": (fake_cupy(driver=0), False, False, "no NVIDIA driver found (CPU only)"),
    "older minor driver": (fake_cupy(driver=12080, runtime=12090), True, True,
                           "CUDA device 0 (Fake GPU) is usable"),
    "newer driver": (fake_cupy(driver=13000, runtime=12090), True, True,
                     "CUDA device 0 (Fake GPU) is usable"),
    "same major": (fake_cupy(driver=13000, runtime=13000), True, True,
                   "CUDA device 0 (Fake GPU) is usable"),
    "older major driver, 13": (fake_cupy(driver=13000, runtime=14000), False, True,
                               "CUDA driver too old: it supports CUDA 13.0, CuPy was built for "
                               "CUDA 14.0; install gpunet[cuda13] or update the driver"),
    "older major driver, no extra": (fake_cupy(driver=14000, runtime=15000), False, True,
                                     "CUDA driver too old: it supports CUDA 14.0, CuPy was built "
                                     "for CUDA 15.0; update the driver"),
    "driver query fails": (fake_cupy(driver_error=RuntimeError("libcudart: bad\n  state")),
                           False, False, "cannot query the CUDA driver: libcudart: bad state"),
    "older major driver": (fake_cupy(driver=12080, runtime=13000), False, True,
                           "CUDA driver too old: it supports CUDA 12.8, CuPy was built for "
                           "CUDA 13.0; install gpunet[cuda12] or update the driver"),
    "driver older than any extra": (fake_cupy(driver=11080, runtime=12090), False, True,
                                    "CUDA driver too old: it supports CUDA 11.8, CuPy was built "
                                    "for CUDA 12.9; update the driver"),
    "no device error": (fake_cupy(count_error=CUDARuntimeError(
                            100, "cudaErrorNoDevice:\n no CUDA-capable device is detected")),
                        False, False, "no usable CUDA device: cudaErrorNoDevice: no "
                                      "CUDA-capable device is detected"),
    "device error": (fake_cupy(count_error=CUDARuntimeError(
                         803, "cudaErrorSystemDriverMismatch: system has unsupported display "
                              "driver / cuda driver combination")),
                     False, True, "no usable CUDA device: cudaErrorSystemDriverMismatch: system "
                                  "has unsupported display driver / cuda driver combination"),
    "count fails without a status": (fake_cupy(count_error=RuntimeError()), False, True,
                                     "no usable CUDA device: RuntimeError"),
    "no visible device": (fake_cupy(devices=0), False, False,
                          "the NVIDIA driver sees no CUDA device (check CUDA_VISIBLE_DEVICES)"),
    "no headers": (fake_cupy(fail=("kernel", NO_HEADERS)), False, True,
                   "a gpunet kernel (NVRTC, CUDA headers) failed on device 0: Failed to find "
                   "CUDA headers. Please install CUDA toolkit headers (e.g., pip install "
                   "cupy-cuda12x[ctk]) or specify CUDA_PATH environment variable."),
    "no binary": (fake_cupy(fail=("kernel", RuntimeError("CUDA_ERROR_NO_BINARY_FOR_GPU"))),
                  False, True, "a gpunet kernel (NVRTC, CUDA headers) failed on device 0: "
                               "CUDA_ERROR_NO_BINARY_FOR_GPU"),
    "wrong kernel": (fake_cupy(wrong="kernel"), False, True,
                     "a gpunet kernel (NVRTC, CUDA headers) failed on device 0: wrong result "
                     "[1.0, 1.5, 2.0], expected [0.0, 0.5, 1.0]"),
    "no cublas": (fake_cupy(fail=("matmul", CUBLAS_MISSING)), False, True,
                  'a matrix product (cuBLAS) failed on device 0: Failure finding '
                  '"libcublasLt.so.13 or libcublasLt.so.12": No such file: libcublasLt.so.13 '
                  f'or libcublasLt.so.12; {INSTALL}'),
    "argsort fails": (fake_cupy(fail=("argsort", RuntimeError("cudaErrorIllegalAddress"))),
                      False, True, "argsort (Thrust) failed on device 0: cudaErrorIllegalAddress"),
}

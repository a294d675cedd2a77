"""A launch bound once (gpunet/backend/bound_launch.py): what cuLaunchKernel is given."""
from __future__ import annotations

import ctypes
from types import SimpleNamespace

import numpy as np
import pytest

from gpunet.backend.bound_launch import C_VALUES, BoundLaunch


def device_array(address: int) -> SimpleNamespace:
    """A stand-in CuPy array: what a bound launch reads of one, its data pointer."""
    return SimpleNamespace(data=SimpleNamespace(ptr=address))


def test_each_argument_is_its_c_value_behind_the_params_array():
    """kernelParams[i] points at argument i's bytes in the parameter's C type:
    an array's data pointer, 0 for None, a NumPy scalar by value."""
    args = (device_array(0xDEAD000), None, np.int64(-5), np.int32(7), np.uint64(2**63 + 1),
            np.float32(0.1), np.float64(0.1))
    launch = BoundLaunch(print, 99, (3,), (256,), args)
    params = ctypes.cast(launch.address, ctypes.POINTER(ctypes.c_void_p))
    expected = [(ctypes.c_void_p, 0xDEAD000), (ctypes.c_void_p, None), (ctypes.c_int64, -5),
                (ctypes.c_int32, 7), (ctypes.c_uint64, 2**63 + 1),
                (ctypes.c_float, np.float32(0.1)), (ctypes.c_double, 0.1)]
    for i, (c_type, value) in enumerate(expected):
        assert ctypes.cast(params[i], ctypes.POINTER(c_type)).contents.value == value


def test_a_launch_is_one_call_with_its_dims_raised_to_one_on_the_stream_given():
    calls = []
    launch = BoundLaunch(lambda *args: calls.append(args), 99, (0,), (8, 8, 4), (None,))
    launch(5)
    launch(6)
    assert calls == [(99, 1, 1, 1, 8, 8, 4, 0, stream, launch.address, 0) for stream in (5, 6)]


@pytest.mark.parametrize("bad", [0.5, 3, np.float16(1), np.zeros(3)], ids=repr)
def test_an_argument_of_no_exact_c_type_is_refused_by_name(bad):
    """A Python float or int (CuPy would pass them as double and long long, maybe
    not the parameter's type), or a host array, is refused in one line."""
    with pytest.raises(TypeError, match=f"got {type(bad).__name__}$") as error:
        BoundLaunch(print, 99, (1,), (1,), (bad,))
    assert ", ".join(t.__name__ for t in C_VALUES) in str(error.value)

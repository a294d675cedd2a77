"""NVRTC for the kernels' compile tests, or a skip saying why it is not here."""
from __future__ import annotations

import re
from typing import Any

import pytest

# The double-precision PTX a float32 kernel with a float64 output needs: the
# register, the one rounding of the float32 result to double, the store.
WIDENING_STORE = re.compile(r"(\.reg \.f64|cvt(\.ftz)?\.f64\.f32|st\.global\.f64)\s")


def usable_nvrtc() -> Any:
    """CuPy's NVRTC module with libnvrtc loaded; the test skips, saying why, where
    CuPy or NVRTC is missing (both come with gpunet's ``kernels`` extra)."""
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()  # loads libnvrtc
    except ImportError as exc:
        pytest.skip(f"CuPy is not installed (pip install -e '.[kernels]'): {exc}")
    except Exception as exc:  # a library that is missing or would not load
        pytest.skip(f"NVRTC is not usable here (pip install -e '.[kernels]'): "
                    f"{type(exc).__name__}: {exc}")
    return nvrtc

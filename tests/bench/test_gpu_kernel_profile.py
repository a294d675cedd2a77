"""benchmarks/gpu_kernel_profile.py's cases, as its command line names them."""
from __future__ import annotations

import pytest


def test_a_case_is_model_batch_and_what_it_switches_off():
    from benchmarks.gpu_kernel_profile import CASES, Case, case
    assert case("deep:128") == Case("deep", 128, parts=False, cold=False)
    assert case("deep:128:parts") == Case("deep", 128, parts=True)  # not the row chain
    assert case("deep:128:cold") == Case("deep", 128, cold=True)  # not reading ahead
    assert case("deep:128:cold:parts") == Case("deep", 128, parts=True, cold=True)
    assert case("deep:128:narrow") == Case("deep", 128, narrow=True)  # one side stream a kind
    assert Case("deep", 128) in CASES


def test_a_case_with_an_unknown_switch_is_refused_naming_it():
    from benchmarks.gpu_kernel_profile import case
    with pytest.raises(ValueError, match="case 'deep:128:hot': no switch hot"):
        case("deep:128:hot")


def test_each_switch_stands_in_for_a_cupy_backend_attribute_of_its_kind():
    cupy_backend = pytest.importorskip("gpunet.backend.cupy_backend",
                                       reason="CuPy is not installed (pip install -e '.[kernels]')")
    from benchmarks.gpu_kernel_profile import SWITCHES
    for name, stand_in in SWITCHES.values():
        kept = getattr(cupy_backend.CupyBackend, name)
        assert callable(kept) == callable(stand_in), name
        if not callable(kept):
            assert type(kept) is type(stand_in) and len(kept) == len(stand_in), name

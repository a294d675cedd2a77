"""benchmarks/gpu_kernel_profile.py's cases, as its command line names them."""
from __future__ import annotations


def test_a_case_is_model_batch_and_whether_the_stages_run_as_their_parts():
    from benchmarks.gpu_kernel_profile import CASES, case
    assert case("deep:128") == ("deep", 128, False)
    assert case("deep:128:parts") == ("deep", 128, True)  # not the row chain
    assert ("deep", 128, False) in CASES

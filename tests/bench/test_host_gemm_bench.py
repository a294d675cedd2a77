"""``benchmarks.host_gemm``: each product of a model's step, which path took it, and
train_epoch with and without gpunet's kernels."""
from __future__ import annotations

import re

from gpunet.backend import host_gemm

from benchmarks.host_gemm import main


def test_it_names_the_kernel_each_product_took_and_times_the_epochs(capsys):
    kernels = host_gemm.kernels
    assert main(["--models", "deep", "--batch-sizes", "128", "--epochs", "1",
                 "--samples", "256"]) == 0
    out = capsys.readouterr().out
    if host_gemm.kernels() is None:
        assert out.startswith("host_gemm.c does not run here")
        return
    assert re.search(r"^deep +128 x W1\^T .* gemm_dots$", out, re.M)
    assert re.search(r"^deep +128 dz1\^T x .* gemm_axpys$", out, re.M)
    assert re.search(r"^deep +128 y1 W2\^T .* NumPy$", out, re.M)
    assert re.search(r"^deep +128  \d+\.\d\d \d+\.\d\d \d+\.\d\d$", out, re.M)
    assert host_gemm.kernels is kernels  # put back after each stand-in

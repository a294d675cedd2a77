#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA device, the tests marked `gpu`, then a short
# benchmark (deep and wide models at batch 128 and 1024 on CuPy: the planned step, its
# CUDA graph replay, PyTorch eager and PyTorch's CUDA graph), then the speed targets.
# The stages, their time limits (290 s in all) and the JSON are gpunet/bench/gpu_check.py;
# this wrapper runs it from the checkout, within 5 minutes.
#
# Needs: Python >= 3.10, NumPy, CuPy >= 14 with CUDA's libraries (gpunet[cuda12] or
# gpunet[cuda13]), tqdm, safetensors, threadpoolctl and pytest; uses PyTorch (the peer),
# matplotlib (figures) and hypothesis (property tests) where installed. No network.
#
# Writes $OUT/gpu-check.json (or ./gpu-check/gpu-check.json) with every figure, and a log
# per stage. Exit status: 0 every check passed, or no CUDA device here; 1 broken (gpunet
# does not import or cannot use the device, a test failed, a stage crashed or ran out of
# time); 4 slow (nothing broken, a speed target missed: "## Speed targets missed").
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
timeout -k 5 300 python3 -m gpunet.bench.gpu_check "${OUT:-gpu-check}"
status=$?
case $status in
    124 | 137) echo "GPU check failed: it ran past 5 minutes"; exit 1 ;;
    *) exit $status ;;
esac

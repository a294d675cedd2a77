#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA device, the tests marked `gpu`, then a
# short throughput run of the deep and wide models at batch 128 and 1024 on CuPy
# with the data on the device (the planned step, and its CUDA graph replay) against
# PyTorch eager where installed, and the kernels against the expressions they
# replace; prints a summary table and the speed targets (gpunet/bench/targets.py).
#
# Needs: Python >= 3.10, NumPy, CuPy >= 14 with CUDA's libraries (gpunet[cuda12] or
# gpunet[cuda13]), tqdm, safetensors, threadpoolctl and pytest; uses PyTorch (the peer), matplotlib
# (figures) and hypothesis (property tests) where installed. No network. Runs from
# anywhere, with this checkout first on PYTHONPATH.
#
# Writes the whole pytest output and the benchmark results to $OUT (or ./gpu-check).
# Exit status: 0 when every check passed, or when there is nothing to check (no
# NVIDIA driver, or it sees no device); 1 when a device exists but gpunet cannot
# use it, gpunet does not import, a test failed, or a speed target was missed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
out=${OUT:-gpu-check}
mkdir -p "$out"
python3 - <<'EOF'
import sys
try:
    from gpunet.backend import cuda_status, explain_auto
except Exception as exc:
    print(f"gpunet does not import: {type(exc).__name__}: {exc}")
    sys.exit(1)
status = cuda_status()
print(explain_auto())
sys.exit(0 if status.usable else 1 if status.device else 3)
EOF
case $? in
    0) ;;
    3) echo "no CUDA device here: GPU checks not run"; exit 0 ;;
    *) echo "GPU check failed: gpunet cannot use this machine's CUDA device"; exit 1 ;;
esac
python3 -m gpunet info
python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="-ra" >"$out/pytest.log" 2>&1
tests=$?
tail -n 15 "$out/pytest.log"
python3 -m gpunet bench --backends cupy --models deep wide --batch-sizes 128 1024 \
    --op-sizes 1000000 10000000 --peers torch --repeats 5 --budget 1 --out "$out" >/dev/null
cat "$out/results.md"
echo "## Speed targets"
python3 -m gpunet.bench.targets "$out/results.json"
targets=$?
[ "$tests" -eq 0 ] && exit $targets
exit $tests

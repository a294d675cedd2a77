#!/usr/bin/env bash
# On a machine with a CUDA GPU (CuPy, NumPy, pytest and tqdm installed; no network
# needed; run from anywhere): the tests marked `gpu`, then a short throughput run of
# the deep model at batch 128 and 1024, NumPy against CuPy with the data on the
# device, and the kernels against the expressions they replace. Prints a summary
# table and the speed targets (benchmarks/targets.py); writes results to $OUT (or
# ./gpu-check). Exits 0, saying so, without a GPU; else nonzero if a test failed
# or a target was missed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
out=${OUT:-gpu-check}
if ! python3 -c "import sys; from gpunet.backend import explain_auto, cuda_status
print(explain_auto()); sys.exit(0 if cuda_status().usable else 1)"; then
    echo "no usable GPU here: GPU checks not run"
    exit 0
fi
python3 -m gpunet info
python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" 2>&1 | tail -n 15
tests=$?
python3 -m gpunet bench --backends numpy cupy --models deep --batch-sizes 128 1024 \
    --op-sizes 1000000 10000000 --peers --repeats 5 --budget 1 --out "$out" >/dev/null
cat "$out/results.md"
echo "## Speed targets"
python3 -m benchmarks.targets "$out/results.json"
targets=$?
[ "$tests" -eq 0 ] && exit $targets
exit $tests

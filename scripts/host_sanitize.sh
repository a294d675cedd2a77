#!/usr/bin/env bash
# The kernels' tests on the host (in both of the host's orders, as always: a grid's
# blocks, a block's threads between barriers, a row's elements, in order and last
# first), their kernels built with AddressSanitizer and UndefinedBehaviorSanitizer. A
# kernel that reads or writes past an array (a NumPy array or its shared memory) or
# overflows a signed integer then fails here, where a GPU might show nothing, or fault
# and lose its context.
# The host runners are tests/helpers/kernel_source.py and block_kernel_source.py.
#
#   scripts/host_sanitize.sh [pytest options, e.g. -n 2]
#
# Needs g++ with libasan and libubsan (Debian: g++), and the test extras. Not part of CI:
# about two minutes with -n 2 on this project's 2-core machines. NVRTC's tests are not
# among these (NVRTC does not run under AddressSanitizer). Exit status: pytest's; 1
# with the sanitizers' reports printed (kept in $OUT, or ./host-sanitize) where any
# was written.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${OUT:-host-sanitize}")
mkdir -p "$out" && rm -f "$out"/report.*
asan=$(g++ -print-file-name=libasan.so)
[ -f "$asan" ] || { echo "host_sanitize: g++ has no libasan.so ($asan)"; exit 1; }
export GPUNET_HOST_CXXFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$out/report"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$out/report"
LD_PRELOAD=$asan python3 -m pytest -q -p no:cacheprovider "$@" \
    tests/backend/test_host_runners.py tests/backend/test_block_kernels_on_host.py \
    tests/backend/test_kernels_on_host.py tests/backend/test_cupy_planned_step_on_host.py \
    tests/backend/test_cupy_graph_step_on_host.py
status=$?
# ASan's warning that it may misread fibers' stacks (ucontext) is not a finding
reports=$(grep -lE "ERROR: AddressSanitizer|runtime error" "$out"/report.* 2>/dev/null)
if [ -n "$reports" ]; then
    cat $reports
    [ "$status" -ne 0 ] || status=1
fi
exit $status

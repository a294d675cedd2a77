#!/usr/bin/env bash
# On a machine with a CUDA GPU (CuPy, NumPy, pytest, tqdm installed; no network
# needed): run the tests marked `gpu`. Exits 0, saying so, where no GPU is usable.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
if ! python3 -c "import sys; from gpunet.backend import explain_auto, cuda_status
print(explain_auto()); sys.exit(0 if cuda_status().usable else 1)"; then
    echo "no usable GPU here: GPU checks not run"
    exit 0
fi
python3 -m pytest -m gpu -q -p no:cacheprovider

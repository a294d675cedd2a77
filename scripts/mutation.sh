#!/usr/bin/env bash
# Mutation testing, not part of CI (about an hour on 2 cores): mutmut plants one bug
# at a time in gpunet/backend, gpunet/layers, gpunet/planning, gpunet/train, gpunet/distributed,
# gpunet/losses.py, gpunet/optimizers.py and gpunet/checkpoint/ (pyproject.toml, [tool.mutmut]),
# runs the tests that cover the changed function, and counts the bugs no test caught ("survived").
#
#   pip install -e '.[test,kernels,mutation]'
#   scripts/mutation.sh                      # every mutant; or name some: "gpunet.losses*"
#   python3 -m mutmut show NAME              # the diff of one survivor
#
# Writes mutants/ (ignored by git) and prints the survivors and the score;
# docs/mutation.md records the last run and the survivors judged equivalent.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m mutmut run "$@" >/dev/null
python3 -m mutmut results | grep -v ": not checked$" || true
python3 - <<'PY'
import collections, json, pathlib
from mutmut.stats import status_by_exit_code  # mutmut's own reading of each exit code
statuses = collections.Counter(
    status_by_exit_code[code] for meta in pathlib.Path("mutants").rglob("*.meta")
    for code in json.loads(meta.read_text())["exit_code_by_key"].values())
run = sum(n for status, n in statuses.items() if status != "not checked")
print(", ".join(f"{n} {status}" for status, n in statuses.most_common()))
if run:
    print(f"score: {statuses['killed'] + statuses['timeout']} of {run} mutants run killed")
PY

"""The GPU check behind scripts/gpu_check.sh: tells a broken GPU path from a slow one.

    python -m gpunet.bench.gpu_check [OUT]        (OUT defaults to gpu-check)

Stages, each a subprocess stopped (its whole process group) past its time limit:

    probe   25 s   can gpunet use CUDA device 0 (backend/cuda_probe.py)? the environment
    info    15 s   gpunet info
    tests  190 s   pytest -m gpu
    bench   60 s   gpunet bench: deep and wide models, batch 128 and 1024, on CuPy, the
                   planned step and its graph, PyTorch eager and its CUDA graph, two op sizes
    targets        gpunet.bench.targets on the bench's results.json, in this process

290 s in all, inside the 5 minutes an H200 is given, with nothing to download. On an
H200 (2026-12-04) they took 3.5, 2.2, 136 (1,051 tests) and 43 s. The
probe gates the rest; after it every stage runs whatever the others did.

Exit status: 0 every check passed, or no CUDA device here (nothing to check); 1 broken:
gpunet does not import or cannot use the device, a test failed, a stage crashed or ran
out of time, or the results lack one of gpunet's own targets; 4 slow: nothing broken,
but a speed target missed (listed under "## Speed targets missed"); 2 wrong usage.

Writes OUT/gpu-check.json (the environment, each stage's status, exit code and
seconds, the pytest counts, the benchmark's results.json, each target), each stage's
output to OUT/STAGE.log, pytest's JUnit XML to OUT/pytest.xml and the benchmark's
files to OUT/bench/.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .targets import Target

PASSED, BROKEN, USAGE, SLOW = 0, 1, 2, 4
DOES_NOT_IMPORT, NO_DEVICE = 2, 3  # the probe's own exit statuses (1: device unusable)
KILL_GRACE_S = 5
SHOWN_ON_FAILURE = 20  # lines of a failed stage's output printed


@dataclass(frozen=True)
class Stage:
    """A command run under ``timeout_s``; exit 0 passes, ``statuses`` names other
    exits that are not failures; ``echo`` lines of its output's tail are printed
    unless it broke (None: all), and ``report`` where it wrote one."""
    name: str
    command: list[str]
    timeout_s: int
    echo: int | None = 0
    report: Path | None = None
    statuses: tuple[tuple[int, str], ...] = ()


@dataclass
class Outcome:
    """A stage's status: 'passed', 'failed', 'timed out', 'not run', 'no device'
    (the probe) or 'missed' (the targets)."""
    name: str
    status: str
    exit_code: int | None = None
    seconds: float = 0.0
    timeout_s: int | None = None
    log: str | None = None
    reason: str = ""

    @property
    def broken(self) -> bool:
        return self.status in ("failed", "timed out")


def probe_stage(out: Path) -> Stage:
    code = "import sys; from gpunet.bench.gpu_check import probe; sys.exit(probe(sys.argv[1]))"
    return Stage("probe", [sys.executable, "-c", code, str(out / "environment.json")], 25, None,
                 statuses=((NO_DEVICE, "no device"),))


def stages(out: Path) -> list[Stage]:
    """The stages after the probe, writing into ``out``."""
    python = sys.executable
    return [Stage("info", [python, "-m", "gpunet", "info"], 15, None),
            Stage("tests", [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                            "-o", "addopts=-ra", f"--junitxml={out / 'pytest.xml'}"], 190, 15),
            Stage("bench", [python, "-m", "gpunet", "bench", "--backends", "cupy",
                            "--models", "deep", "wide", "--batch-sizes", "128", "1024",
                            "--op-sizes", "1000000", "10000000", "--peers", "torch",
                            "--repeats", "5", "--budget", "1", "--out", str(out / "bench")],
                  60, 0, out / "bench" / "results.md")]


def probe(facts_path: str) -> int:
    """The probe stage: prints what ``auto`` chooses and why, writes the environment
    to ``facts_path``; exits 0 usable, 1 a device gpunet cannot use, 2 gpunet does
    not import, 3 no device."""
    try:
        from gpunet.backend import cuda_status, explain_auto
        from gpunet.bench.environment import describe_environment
    except Exception as exc:
        print(f"gpunet does not import: {type(exc).__name__}: {exc}")
        return DOES_NOT_IMPORT
    status = cuda_status()
    print(explain_auto())
    Path(facts_path).write_text(json.dumps(describe_environment()))
    return 0 if status.usable else 1 if status.device else NO_DEVICE


def run_stage(stage: Stage, out: Path) -> Outcome:
    """``stage`` run to its end or its time limit, its output in OUT/NAME.log and,
    as ``echo`` says, on the console."""
    log = out / f"{stage.name}.log"
    start = time.perf_counter()
    with log.open("w") as f:
        try:
            process = subprocess.Popen(stage.command, stdout=f, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            f.write(f"cannot start {stage.command[0]}: {exc}\n")
            code: int | None = -1
        else:
            try:
                code = process.wait(timeout=stage.timeout_s)
            except subprocess.TimeoutExpired:
                _stop(process)
                code = None
    seconds = round(time.perf_counter() - start, 2)
    lines = log.read_text(errors="replace").splitlines()
    status = ("passed" if code == 0 else "timed out" if code is None
              else dict(stage.statuses).get(code, "failed"))
    last = next((line.strip()[:300] for line in reversed(lines) if line.strip()), "")
    outcome = Outcome(stage.name, status, code, seconds, stage.timeout_s, str(log),
                      f"timed out after {stage.timeout_s} s" if code is None else last)
    shown = (lines[-SHOWN_ON_FAILURE:] if outcome.broken else lines if stage.echo is None
             else lines[-stage.echo:] if stage.echo else [])
    print(f"## {stage.name}: {status} in {seconds:.1f} s (limit {stage.timeout_s} s)", flush=True)
    if shown:
        print("\n".join(shown), flush=True)
    if status == "passed" and stage.report is not None and stage.report.is_file():
        print(stage.report.read_text(), flush=True)
    return outcome


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the stage's process group, SIGKILL if it outlives the grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            pass


def pytest_counts(junit_xml: Path) -> dict[str, int] | None:
    """Passed, failed, errors and skipped from pytest's JUnit XML, if it wrote one."""
    try:
        suites = list(ElementTree.parse(junit_xml).getroot().iter("testsuite"))
    except (OSError, ElementTree.ParseError):
        return None
    total = {key: sum(int(s.get(key, 0)) for s in suites)
             for key in ("tests", "failures", "errors", "skipped")}
    return {"passed": total["tests"] - total["failures"] - total["errors"] - total["skipped"],
            "failed": total["failures"], "errors": total["errors"], "skipped": total["skipped"]}


def judge(results: Path) -> tuple[Outcome, dict[str, Any] | None, list[Target]]:
    """The targets stage: (its outcome, the benchmark's results, the targets)."""
    start = time.perf_counter()
    if not results.is_file():
        return Outcome("targets", "failed", reason=f"no benchmark results ({results})"), None, []
    try:
        from .targets import check
        measured = json.loads(results.read_text())
        targets = check(measured)
    except Exception as exc:
        return (Outcome("targets", "failed", reason=f"cannot judge {results}: "
                                                    f"{type(exc).__name__}: {exc}"), None, [])
    seconds = round(time.perf_counter() - start, 2)
    absent = [t.what for t in targets if t.required and t.verdict == "not measured"]
    missed = [t.what for t in targets if t.verdict == "FAIL"]
    status, reason = (("failed", "not measured: " + "; ".join(absent)) if absent
                      else ("missed", f"{len(missed)} missed") if missed else ("passed", ""))
    return Outcome("targets", status, seconds=seconds, reason=reason), measured, targets


def run_check(out: Path, probe_: Stage, later: Sequence[Stage],
              results: Path | None = None) -> int:
    """The whole check into ``out`` (``results``: the bench's results.json, by
    default OUT/bench/results.json); returns the exit status."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    facts, results = out / "environment.json", results or out / "bench" / "results.json"
    for stale in (facts, out / "pytest.xml", results):  # a previous run's
        stale.unlink(missing_ok=True)
    first = run_stage(probe_, out)
    environment = json.loads(facts.read_text()) if facts.is_file() else None
    facts.unlink(missing_ok=True)
    measured, targets, info = None, [], None
    if first.status == "passed":
        outcomes = [first, *(run_stage(stage, out) for stage in later)]
        info_log = out / "info.log"
        info = info_log.read_text().splitlines() if info_log.is_file() else None
        judged, measured, targets = judge(results)
        outcomes.append(judged)
        code = _report(outcomes, targets)
    else:
        if first.status == "no device":
            code = PASSED
            print("no CUDA device here: GPU checks not run")
        else:
            code = BROKEN
            print("GPU check failed: " + (
                "gpunet does not import" if first.exit_code == DOES_NOT_IMPORT
                else f"the probe {first.reason}" if first.exit_code is None
                else "gpunet cannot use this machine's CUDA device"))
        outcomes = [first, *(Outcome(name, "not run", reason=f"probe: {first.status}")
                             for name in [*(stage.name for stage in later), "targets"])]
    record = {"verdict": "no device" if first.status == "no device"
              else {PASSED: "passed", BROKEN: "broken", SLOW: "slow"}[code],
              "exit_code": code, "seconds": round(time.perf_counter() - start, 2),
              "limit_s": probe_.timeout_s + sum(stage.timeout_s for stage in later),
              "environment": environment, "info": info,
              "stages": [asdict(outcome) for outcome in outcomes],
              "tests": pytest_counts(out / "pytest.xml"), "benchmark": measured,
              "targets": [target.as_json() for target in targets]}
    (out / "gpu-check.json").write_text(json.dumps(record, indent=1))
    return code


def _report(outcomes: list[Outcome], targets: list[Target]) -> int:
    """Prints the targets, the missed ones, the broken stages and each stage's
    outcome; returns the exit status."""
    if targets:
        print("## Speed targets\n" + "\n".join(t.line for t in targets))
    missed = [t for t in targets if t.verdict == "FAIL"]
    if missed:
        print("## Speed targets missed\n" + "\n".join(t.line for t in missed))
    broken = [o for o in outcomes if o.broken]
    if broken:
        print("## Broken\n" + "\n".join(f"{o.name}: {o.status}: {o.reason}" for o in broken))
    print("## Stages")
    for o in outcomes:
        limit = f" (limit {o.timeout_s} s)" if o.timeout_s else ""
        print(f"{o.name:>8}  {o.status:<10} {o.seconds:6.1f} s{limit}")
    code = BROKEN if broken else SLOW if missed else PASSED
    print(f"GPU check: {'broken' if broken else 'slow' if missed else 'passed'} (exit {code})")
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print("usage: python -m gpunet.bench.gpu_check [OUT]", file=sys.stderr)
        return USAGE
    out = Path(args[0] if args else "gpu-check")
    return run_check(out, probe_stage(out), stages(out))


if __name__ == "__main__":
    sys.exit(main())

"""The run's results as JSON (everything) and Markdown (the tables a person reads)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import replacing
from .flags import LOAD_MARK, NOISY_MARK, NOISY_SPREAD, load_limit, marks
from .scaling import ALLREDUCE_HOSTS

UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
LIBRARIES = (("NumPy", "numpy"), ("CuPy", "cupy"), ("PyTorch", "torch"))  # name, environment key


def write_json(measured: dict[str, Any], path: Path) -> Path:
    with replacing(path) as file:
        file.write(json.dumps(measured, indent=1).encode())
    return path


def write_markdown(measured: dict[str, Any], path: Path) -> Path:
    with replacing(path) as file:
        file.write(markdown(measured).encode())
    return path


def markdown(measured: dict[str, Any]) -> str:
    env = measured["environment"]
    cuda = env.get("cuda") or {}
    lines = ["# gpunet benchmark", "",
             f"- machine: {env['processor']}, {env['cores']} cores, "
             f"{(env['memory_bytes'] or 0) / 2 ** 30:.0f} GiB; {env['os']}",
             f"- load average when the run ended: {_load(env.get('load_average'))}",
             f"- thread pools: {_thread_pools(env.get('thread_pools') or [])}",
             f"- GPU: {cuda.get('name') or 'none (' + str(cuda.get('reason')) + ')'}",
             f"- Python {env['python']}, gpunet {env['gpunet']}, "
             + ", ".join(_version(name, env[key]) for name, key in LIBRARIES), "",
             *notes(measured), ""]
    lines += _training_table([r for r in measured["results"] if r.get("case") == "train"])
    lines += _scaling_section([r for r in measured["results"]
                               if r.get("case") in ("scaling", "allreduce", ALLREDUCE_HOSTS)])
    lines += _op_table([r for r in measured["results"] if r.get("case") == "op"])
    if measured.get("skipped"):
        lines += ["## Not measured", ""] + [f"- {reason}" for reason in measured["skipped"]] + [""]
    return "\n".join(lines)


def notes(measured: dict[str, Any]) -> list[str]:
    """What the marks in the results mean, and how many measurements carry each."""
    return [_noise_note(measured["results"]),
            _load_note(measured["results"], measured["environment"]["cores"])]


def _version(name: str, version: str | None) -> str:
    """E.g. 'PyTorch 2.13.0', or 'PyTorch: not installed'."""
    return f"{name} {version}" if version else f"{name}: not installed"


def _load(load: list[float] | None) -> str:
    """E.g. '2.91 / 2.19 / 1.76 (1 / 5 / 15 min)'."""
    return f"{' / '.join(f'{x:.2f}' for x in load)} (1 / 5 / 15 min)" if load else "unknown"


def _thread_pools(pools: list[dict[str, Any]]) -> str:
    """One entry per library, e.g. 'openblas 0.3.31 (blas, pthreads): 2 threads'."""
    return "; ".join(map(_thread_pool, pools)) or "none loaded"


def _thread_pool(pool: dict[str, Any]) -> str:
    kind = ", ".join(filter(None, (pool["user_api"], pool.get("threading_layer"))))
    return f"{pool['internal_api']} {pool.get('version')} ({kind}): {pool['num_threads']} threads"


def _noise_note(results: list[dict[str, Any]]) -> str:
    """How many measurements are noisy, and what that means; or that none is."""
    return _flag_note(results, "noisy", NOISY_MARK,
                      f"readings spread by more than {NOISY_SPREAD:.0%} of their median "
                      "((max - min) / median)", "whose {rule}",
                      "something else used the machine while they ran, so their medians may be "
                      "off; rerun them before trusting them.",
                      "No measurement is noisy: none of the {timed} has {rule}.")


def _load_note(results: list[dict[str, Any]], cores: int | None) -> str:
    """How many measurements ran under load, and what that means; or that none did."""
    return _flag_note(results, "under_load", LOAD_MARK,
                      f"a 1-minute load average above {load_limit(cores or 1):g} before or "
                      f"after it (on {cores or 'unknown'} cores, the benchmark itself counting "
                      "about 1)", "that ran under load, with {rule}",
                      "other processes had the cores, so every reading may be slow alike; rerun "
                      "them on a quieter machine before trusting them. The mark gives the higher "
                      "reading.",
                      "No measurement ran under load: none of the {timed} had {rule}.")


def _flag_note(results: list[dict[str, Any]], key: str, mark: str, rule: str, which: str,
               meaning: str, none: str) -> str:
    """The note on the records flagged ``key``: how many of those that have the flag
    carry ``mark``, by ``rule``, and ``meaning``; ``none`` where none does."""
    timed = [r for r in results if key in r]
    flagged = sum(r[key] for r in timed)
    if not flagged:
        return none.format(timed=len(timed), rule=rule)
    return (f"{mark} marks the {flagged} of {len(timed)} measurements "
            f"{which.format(rule=rule)}: {meaning}")


def _training_table(records: list[dict[str, Any]]) -> list[str]:
    if not records:
        return []
    lines = ["## Training throughput (samples/s, median)", "",
             "| model | batch | peer | backend | timed | samples/s | time min / median / max "
             "| spread | step memory | roofline |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(records, key=lambda r: (r["model"], r["batch_size"], r["peer"], r["backend"],
                                            r["what"] != "step")):
        roof = r.get("roofline")
        bound = f"{roof['fraction_of_roofline']:.1%} ({roof['limit']})" if roof else ""
        spread = f"{r['spread']:.0%}" if "spread" in r else ""
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['peer']} | {r['backend']} "
                     f"| {r['what']} | {r['samples_per_s']:,.0f}{marks(r)} | {_times(r)} "
                     f"| {spread} | {_memory(r)} | {bound} |")
    return lines + [""]


def _scaling_section(records: list[dict[str, Any]]) -> list[str]:
    """The epoch on one process and on N ranks, then the cost of an allreduce."""
    epochs = [r for r in records if r["case"] == "scaling"]
    if not epochs:
        return []
    lines = ["## Data-parallel scaling (samples/s, median)", "",
             f"One epoch of the {epochs[0]['model']} model at batch {epochs[0]['batch_size']} "
             f"on {epochs[0]['backend']}, in one process and on MPI ranks; the speed-up is "
             "the one process's median time over the ranks', the efficiency the speed-up over "
             "the number of ranks.", "",
             "| ranks | BLAS threads per rank | samples | samples/s | time min / median / max "
             "| spread | speed-up | efficiency |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(epochs, key=lambda r: r["ranks"]):
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else ""
        efficiency = f"{r['efficiency']:.0%}" if "efficiency" in r else ""
        lines.append(f"| {r['ranks']} | {r['blas_threads'] or 'unknown'} | {r['samples']:,} "
                     f"| {r['samples_per_s']:,.0f}{marks(r)} | {_times(r)} | {r['spread']:.0%} "
                     f"| {speedup} | {efficiency} |")
    lines += ["", "`MPICommunicator.allreduce` of a model's float32 gradient, timed on rank 0 "
              "from a barrier, between the ranks of one host and, where they can be made, "
              "of two hosts on this machine (network namespaces joined by TCP):", "",
              "| gradient of | ranks | between | elements | time min / median / max | spread |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in (r for r in records if r["case"] in ("allreduce", ALLREDUCE_HOSTS)):
        between = ("1 host (shared memory)" if r["case"] == "allreduce"
                   else f"2 hosts (TCP, {-(-r['ranks'] // 2)} a host)")
        lines.append(f"| {r['model']} | {r['ranks']} | {between} | {r['elements']:,} "
                     f"| {_times(r)}{marks(r)} | {r['spread']:.0%} |")
    return lines + [""]


def _op_table(records: list[dict[str, Any]]) -> list[str]:
    if not records:
        return []
    pairs: dict[tuple, dict[str, Any]] = {}
    for r in records:
        pairs.setdefault((r["op"], r["backend"], r["size"]), {})[r["variant"]] = r
    lines = ["## Operations (achieved GB/s, median)", "",
             "| op | backend | elements | kernel GB/s | kernel time min / median / max "
             "| expression GB/s | expression time min / median / max | kernel speed-up |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (op, backend, size), variants in pairs.items():
        kernel, expression = variants.get("kernel"), variants.get("expression")
        speedup = (f"{expression['median_s'] / kernel['median_s']:.2f}x"
                   if kernel and expression else "")
        lines.append(f"| {op} | {backend} | {size:.0e} | {_gbps(kernel)} | {_times(kernel)} "
                     f"| {_gbps(expression)} | {_times(expression)} | {speedup} |")
    return lines + [""]


def _gbps(record: dict[str, Any] | None) -> str:
    return f"{record['gb_per_s']:.2f}{marks(record)}" if record else ""


def _times(record: dict[str, Any] | None) -> str:
    """Seconds per call, min / median / max in one unit, e.g. '181 / 186 / 250 µs'."""
    if not record:
        return ""
    if "min_s" not in record:
        return f"extrapolated from {record['extrapolated_from_s']:.3g} s"
    scale, unit = next(((s, u) for s, u in UNITS if record["median_s"] >= s), UNITS[-1])
    values = (record[key] / scale for key in ("min_s", "median_s", "max_s"))
    return " / ".join(f"{v:,.0f}" if v >= 1000 else f"{v:.3g}" for v in values) + f" {unit}"


def _memory(record: dict[str, Any]) -> str:
    """The step's memory and how it was measured, e.g. '1.25 MiB (tracemalloc peak)'."""
    n = record.get("step_memory_bytes")
    return "" if n is None else f"{n / 2 ** 20:.2f} MiB ({record['step_memory_measure']})"

"""The benchmark run: which cases, and how long each is measured."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..backend import Backend, BackendUnavailable, get_backend
from ..models import PRESETS
from . import peers
from .environment import describe_environment
from .flags import LoadWatch, marks
from .ops import OPS, op_case
from .roofline import roofline
from .scaling import scaling_results
from .timing import MIN_REPEATS, CudaEventClock, HostClock, Timing, measure
from .trainers import GpunetTrainer, mnist_like, step_memory

PEERS = ("torch", "notebook")


@dataclass
class Config:
    backends: list[str] = field(default_factory=lambda: ["numpy", "cupy"])
    models: list[str] = field(default_factory=lambda: list(PRESETS))
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32, 128, 1024, 8192])
    op_sizes: list[int] = field(default_factory=lambda: [10 ** k for k in range(3, 9)])
    ops: list[str] = field(default_factory=lambda: list(OPS))
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    repeats: int = 7
    budget_s: float = 2.0          # per measurement, after its first repeat
    epoch_samples: int = 60_000
    notebook_budget_s: float = 10.0
    nproc: int | None = None       # MPI ranks of the scaling measurement; None: not measured

    @classmethod
    def quick(cls) -> "Config":
        """About a minute on a 2-core CPU."""
        return cls(models=["logistic", "deep"], batch_sizes=[1, 128], op_sizes=[10 ** 3, 10 ** 5],
                   repeats=3, budget_s=0.3, epoch_samples=2048, notebook_budget_s=1.0)


def run(config: Config, say: Callable[[str], None] = print,
        watch: LoadWatch = LoadWatch()) -> dict[str, Any]:
    """Measure every case the config names on every backend that runs here,
    ``watch`` reading the load average around each; returns {"environment",
    "config", "skipped", "results"}."""
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name in config.backends:
        try:
            backend = get_backend(name)
        except BackendUnavailable as exc:
            skipped.append(f"backend {name}: {exc}")
            say(f"skipping backend {name}: {exc}")
            continue
        clock = CudaEventClock() if backend.name == "cupy" else HostClock()
        results += _op_results(config, backend, clock, say, watch)
        results += _training_results(config, backend, clock, say, watch)
    results += _peer_results(config, skipped, say, watch)
    if config.nproc is not None:
        results += scaling_results(config.nproc, config.epoch_samples, config.repeats, skipped, say,
                                   watch)
    environment = describe_environment()  # last: the thread pools the peers started count too
    _add_roofline(results, environment["cuda"].get("name"))
    return {"environment": environment, "config": asdict(config), "skipped": skipped,
            "results": results}


def _op_results(config: Config, backend: Backend, clock: Any, say: Callable[[str], None],
                watch: LoadWatch) -> list[dict]:
    results = []
    for op in config.ops:
        for size in config.op_sizes:
            case = op_case(op, size, backend)
            for variant, fn in (("kernel", case.kernel), ("expression", case.expression)):
                timing, load = _measure(fn, clock, config.repeats, config, watch)
                results.append({"case": "op", "op": op, "backend": backend.name, "variant": variant,
                                "size": case.size, "dtype": "float32", **timing.record(), **load,
                                "bytes": case.bytes, "gb_per_s": case.bytes / timing.median_s / 1e9})
            kernel, expression = results[-2:]
            say(f"op {op} {backend.name} size {size:.0e}: kernel {kernel['gb_per_s']:.2f} GB/s"
                f"{marks(kernel)}, expression {expression['gb_per_s']:.2f} GB/s{marks(expression)}")
            del case
    return results


def _training_results(config: Config, backend: Backend, clock: Any,
                      say: Callable[[str], None], watch: LoadWatch) -> list[dict]:
    results = []
    x, labels = mnist_like(max(config.epoch_samples, max(config.batch_sizes)))
    # "gpunet" on CuPy is the planned step run eagerly, beside "gpunet graph", its CUDA
    # graph (which "auto" would replay for both); elsewhere "auto", the backend's best
    graph = "off" if backend.name == "cupy" else "auto"
    for model in config.models:
        for batch_size in config.batch_sizes:
            n = _epoch_size(config, batch_size)
            trainer = GpunetTrainer(model, batch_size, x[:n], labels[:n], backend, graph=graph)
            results += _time_trainer(trainer, model, batch_size, clock, config, say, watch)
            if backend.name == "cupy":  # an epoch replaying the planned step as a CUDA graph
                trainer = GpunetTrainer(model, batch_size, x[:n], labels[:n], backend, graph="on")
                results += _time_trainer(trainer, model, batch_size, clock, config, say, watch,
                                         steps=False)
    return results


def _add_roofline(results: list[dict], device_name: str | None) -> None:
    """Each CuPy training record's fraction of the roofline of ``device_name``."""
    for record in results:
        if record["case"] == "train" and record["backend"] == "cupy":
            batch_size = record["batch_size"]
            step_s = record["median_s"] * batch_size / record["samples"]
            record["roofline"] = roofline(record["model"], batch_size, step_s, device_name)


def _peer_results(config: Config, skipped: list[str], say: Callable[[str], None],
                  watch: LoadWatch) -> list[dict]:
    results = []
    x, labels = mnist_like(max(config.epoch_samples, max(config.batch_sizes)))
    if "torch" in config.peers:
        for device in ("cpu", "cuda"):
            reason = peers.torch_unavailable(device)
            if reason:
                skipped.append(f"torch {device}: {reason}")
                continue
            clock = HostClock()
            for model in config.models:
                for batch_size in config.batch_sizes:
                    n = _epoch_size(config, batch_size)
                    for graph in (False, True) if device == "cuda" else (False,):
                        try:
                            trainer = peers.torch_trainer(model, batch_size, x[:n], labels[:n],
                                                          device, graph=graph)
                        except RuntimeError as exc:  # a capture PyTorch refused
                            skipped.append(f"torch graph cuda {model} batch {batch_size}: "
                                           f"capture failed: {exc}")
                            continue
                        clock.synchronize = trainer.synchronize
                        results += _time_trainer(trainer, model, batch_size, clock, config, say,
                                                 watch)
    if "notebook" in config.peers and 1 not in config.batch_sizes:
        skipped.append("notebook: it trains at batch size 1 only, and the batch sizes leave 1 out")
    elif "notebook" in config.peers:
        for model in config.models:
            rate, load = watch.around(lambda: peers.notebook_samples_per_second(
                model, x, labels, config.notebook_budget_s))
            results.append({"case": "train", "what": "epoch", "peer": "notebook",
                            "backend": "python", "model": model, "batch_size": 1,
                            "samples": rate["samples"], "median_s": rate["epoch_seconds_60k"],
                            "repeats": 1, "samples_per_s": rate["samples_per_s"],
                            "extrapolated_from_s": rate["seconds"], **load,
                            "step_memory_bytes": None, "step_memory_measure": None})
            say(f"notebook {model} batch 1: {rate['samples_per_s']:,.0f} samples/s"
                f"{marks(results[-1])} (extrapolated from {rate['samples']} samples)")
    return results


def _time_trainer(trainer: Any, model: str, batch_size: int, clock: Any, config: Config,
                  say: Callable[[str], None], watch: LoadWatch, steps: bool = True) -> list[dict]:
    """A step (unless not ``steps``: a graph's steps are timed only within
    epochs) and an epoch of ``trainer``, as records: each after a warm-up call,
    epochs repeated at least ``MIN_REPEATS`` times; an epoch's says how its full
    batches ran (``step_path``), where the trainer tells."""
    epoch_size = _epoch_size(config, batch_size)
    memory, measure_name = step_memory(trainer) if steps else (None, None)
    records = []
    measured = [("step", trainer.step, batch_size)] if steps else []
    for what, fn, samples in [*measured, ("epoch", trainer.epoch, epoch_size)]:
        repeats = config.repeats if what == "step" else max(config.repeats // 2, MIN_REPEATS)
        timing, load = _measure(fn, clock, repeats, config, watch)
        records.append({"case": "train", "what": what, "peer": trainer.name,
                        "backend": trainer.device, "model": model, "batch_size": batch_size,
                        "samples": samples, **timing.record(), **load,
                        "samples_per_s": samples / timing.median_s,
                        "step_memory_bytes": memory, "step_memory_measure": measure_name,
                        **({"step_path": trainer.step_path} if what == "epoch"
                           and getattr(trainer, "step_path", None) else {})})
    say(f"{trainer.name} {trainer.device} {model} batch {batch_size}: "
        + ", ".join(f"{r['what']} {r['samples_per_s']:,.0f} samples/s{marks(r)}" for r in records))
    return records


def _measure(fn: Callable[[], Any], clock: Any, repeats: int, config: Config,
             watch: LoadWatch) -> tuple[Timing, dict[str, Any]]:
    """``fn`` timed by ``measure`` within the config's budget, and the load around it."""
    return watch.around(lambda: measure(fn, clock, repeats=repeats, budget_s=config.budget_s))


def _epoch_size(config: Config, batch_size: int) -> int:
    """An epoch of ``config.epoch_samples``, but at least one full batch."""
    return max(config.epoch_samples, batch_size)

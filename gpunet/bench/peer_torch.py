"""PyTorch as a peer: gpunet's model, loss and optimizer in plain PyTorch, eager
or, on a GPU, with each step replayed as a CUDA graph.

PyTorch is not a dependency of gpunet: it is imported only inside these
functions, and ``torch_unavailable`` says why it cannot run where it cannot.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..models import NOTEBOOK_RATES

from .peer_model import check_data, gpunet_model

DEVICES = ("cpu", "cuda")


def _torch() -> ModuleType | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_version() -> str | None:
    """PyTorch's version, None when it is not installed."""
    torch = _torch()
    return None if torch is None else torch.__version__


def torch_unavailable(device: str) -> str | None:
    """None when PyTorch can train on ``device`` ('cpu' or 'cuda'), else why not, in one line."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r} for PyTorch; "
                         f"valid devices: {', '.join(DEVICES)}")
    torch = _torch()
    if torch is None:
        return "PyTorch is not installed"
    if device == "cuda" and not torch.cuda.is_available():
        cuda = torch.version.cuda
        build = "a CPU-only build" if cuda is None else f"built for CUDA {cuda}"
        return f"no CUDA device for PyTorch ({torch.__version__}, {build})"
    return None


def _network(model: str, seed: int) -> Any:
    """gpunet's preset ``model`` as a torch.nn.Sequential with gpunet's initial values.
    Its dropout is the notebook's: zero with probability p while training, no rescaling."""
    import torch

    class NotebookDropout(torch.nn.Module):
        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = p

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * (torch.rand_like(x) >= self.p)

    layers, params = gpunet_model(model, seed)
    values = iter(params)
    modules: list[torch.nn.Module] = []
    for spec in layers:
        kind = spec["layer"]
        if kind == "Linear":
            linear = torch.nn.Linear(spec["input_dim"], spec["output_dim"])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(next(values)))
                linear.bias.copy_(torch.from_numpy(next(values)))
            modules.append(linear)
        elif kind == "Dropout":
            modules.append(NotebookDropout(spec["p"]))
        else:
            modules.append({"Tanh": torch.nn.Tanh, "Relu": torch.nn.ReLU}[kind]())
    return torch.nn.Sequential(*modules)


class TorchTrainer:
    """Softmax cross-entropy (mean over the batch) and the notebook's momentum,
    u <- mo u + (1 - mo) g, p <- p - lr u, which is SGD with dampening = momentum."""

    name = "torch"

    def __init__(self, net: Any, x: Any, y: Any, batch_size: int, device: str) -> None:
        import torch

        lr, mo = NOTEBOOK_RATES
        self.net, self.x, self.y, self.batch_size, self.device = net, x, y, batch_size, device
        self.optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=mo, dampening=mo)
        for param in net.parameters():  # as the notebook's, u starts at 0 (SGD's would start at g)
            self.optimizer.state[param]["momentum_buffer"] = torch.zeros_like(param)

    def _train(self, x: Any, y: Any) -> None:
        import torch.nn.functional as F

        self.optimizer.zero_grad()
        F.cross_entropy(self.net(x), y).backward()
        self.optimizer.step()

    def _full_batch(self, x: Any, y: Any) -> None:
        """A step on ``batch_size`` rows (``TorchGraphTrainer`` replays its graph)."""
        self._train(x, y)

    def step(self) -> None:
        self._full_batch(self.x[:self.batch_size], self.y[:self.batch_size])

    def epoch(self) -> None:
        b = self.batch_size
        for start in range(0, len(self.x), b):
            x, y = self.x[start:start + b], self.y[start:start + b]
            (self._full_batch if len(x) == b else self._train)(x, y)

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()


class TorchGraphTrainer(TorchTrainer):
    """The same step captured as one CUDA graph, PyTorch's whole-network capture:
    three warm-up steps and the capture on one side stream (a library handle made
    lazily on a new stream would be made mid-capture), the gradients set to None
    before it so that the captured backward writes them; each full batch is then
    copied into the graph's static inputs and the graph replayed, and a shorter
    last batch runs eagerly. The parameters and momenta are put back as they were
    before the warm-up, so it trains as ``TorchTrainer`` does from the same start."""

    name = "torch graph"
    WARMUP_STEPS = 3

    def __init__(self, net: Any, x: Any, y: Any, batch_size: int, device: str) -> None:
        import torch
        import torch.nn.functional as F

        super().__init__(net, x, y, batch_size, device)
        self.static_x, self.static_y = x[:batch_size].clone(), y[:batch_size].clone()
        state = [*net.parameters(), *(self.optimizer.state[p]["momentum_buffer"]
                                      for p in net.parameters())]
        start = [tensor.detach().clone() for tensor in state]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_STEPS):
                self._train(self.static_x, self.static_y)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph, stream=side):
            F.cross_entropy(self.net(self.static_x), self.static_y).backward()
            self.optimizer.step()
        with torch.no_grad():  # in place: the graph holds these tensors' addresses
            for tensor, value in zip(state, start):
                tensor.copy_(value)

    def _full_batch(self, x: Any, y: Any) -> None:
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()


def torch_trainer(model: str, batch_size: int, x: np.ndarray, y: np.ndarray,
                  device: str = "cpu", seed: int = 0, graph: bool = False) -> TorchTrainer:
    """PyTorch eager training gpunet's preset ``model`` on ``device``: x (N, 784)
    float32 and int labels y (N,) are copied to the device once; ``step`` trains on
    the first ``batch_size`` rows, ``epoch`` on all N in order. With ``graph``
    (CUDA only, at most N rows a batch) each full batch replays a CUDA graph of
    the step (``TorchGraphTrainer``). RuntimeError with ``torch_unavailable``'s
    reason where PyTorch cannot run, or PyTorch's where the capture fails."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if graph and device != "cuda":
        raise ValueError(f"a CUDA graph needs device 'cuda', got {device!r}")
    check_data(x, y)
    if graph and batch_size > len(x):
        raise ValueError(f"a CUDA graph of batches of {batch_size} needs at least that many "
                         f"rows, got {len(x)}")
    reason = torch_unavailable(device)
    if reason is not None:
        raise RuntimeError(reason)
    import torch

    torch.manual_seed(seed)
    net = _network(model, seed).to(device)
    trainer = TorchGraphTrainer if graph else TorchTrainer
    return trainer(net, torch.as_tensor(x, dtype=torch.float32, device=device),
                   torch.as_tensor(y, dtype=torch.int64, device=device), batch_size, device)

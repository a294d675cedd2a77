"""The peers gpunet is measured against, and what every timed trainer provides.

PyTorch eager on the same model, device and batch (``peer_torch``, only where
PyTorch is installed), and the notebook's pure-Python loop at batch size 1
(``peer_notebook``, time-boxed and extrapolated).
"""
from __future__ import annotations

from typing import Protocol

from .peer_notebook import notebook_samples_per_second
from .peer_torch import torch_trainer, torch_unavailable, torch_version

__all__ = ["Trainer", "notebook_samples_per_second", "torch_trainer", "torch_unavailable",
           "torch_version"]


class Trainer(Protocol):
    """One model, loss and optimizer with its data preloaded where it computes."""

    name: str    # "gpunet", "torch", ...
    device: str  # "cpu", "cuda", ...

    def step(self) -> None:
        """One training step on one fixed, preloaded batch."""

    def epoch(self) -> None:
        """One pass over the preloaded data set, in order, in batches."""

    def synchronize(self) -> None:
        """Wait for the work queued on the device (no-op on the CPU)."""

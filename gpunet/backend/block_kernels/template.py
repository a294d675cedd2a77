"""A block kernel as data: a ``__global__`` template over the float type ``T``,
and the C names of the types its parameters take."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPTIONS = ("--std=c++17",)
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
C_NAMES = {"T": "T", "uint64": "unsigned long long", "int64": "long long"}  # kernels.py's types


@dataclass(frozen=True)
class BlockKernel:
    """A ``__global__`` template over ``T``: its CUDA name, parameters and body.
    Any block of up to 1024 threads may launch it: ``__launch_bounds__`` keeps its
    registers within what so many threads share (64 each). ``alone``: launched as
    one block, so its registers need leave no room for a second on an SM (left to
    itself, ptxas may cap a kernel at 32 a thread, spilling, for two blocks an SM)."""

    name: str
    params: str
    body: str
    alone: bool = False

    def names(self) -> list[str]:
        """Its parameters' names, in order."""
        return [param.split()[-1].lstrip("*") for param in self.params.split(", ")]

    def template(self) -> str:
        bounds = "1024, 1" if self.alone else "1024"
        return (f"template<typename T>\n__global__ void __launch_bounds__({bounds})"
                f" {self.name}({self.params})\n{{\n{self.body}\n}}\n")


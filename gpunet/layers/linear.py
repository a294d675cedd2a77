"""The fully connected layer: y = x W^T + b."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..backend import DEFAULT_DTYPE, Array, Backend, get_backend
from ..backend.base import FLOAT_DTYPES
from ..init import random_tensor
from .layer import Layer


class Linear(Layer):
    """``output_dim`` neurons, each with ``input_dim`` weights and a bias.

    ``w`` has shape (output_dim, input_dim) as in the notebook, ``b`` (output_dim,).
    Backward stores dW = dy^T x and db = sum over the batch of dy (into the same
    ``w_grad``/``b_grad`` arrays every time) and returns dx = dy W.
    Inputs are converted to the layer's dtype (float32 unless ``dtype`` says
    otherwise) and moved to its backend (default: ``gpunet.get_backend()``).
    """

    def __init__(self, input_dim: int, output_dim: int, init: str = "xavier", *,
                 dtype: Any = None, backend: str | Backend | None = None) -> None:
        self.backend = get_backend(backend)
        dtype = np.dtype(DEFAULT_DTYPE if dtype is None else dtype)
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"Linear dtype must be float32 or float64, got {dtype}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.init = init
        self.w = self.backend.asarray(random_tensor(output_dim, input_dim, init=init), dtype)
        self.b = self.backend.asarray(random_tensor(output_dim, init=init), dtype)
        self.w_grad = self.backend.zeros_like(self.w)
        self.b_grad = self.backend.zeros_like(self.b)
        self.input: Array | None = None

    def __repr__(self) -> str:
        return f"Linear({self.input_dim}, {self.output_dim}, dtype={self.w.dtype})"

    def forward(self, input: Any) -> Array:
        backend, w = self.backend, self.w
        x = input
        if type(x) is not backend.array_type or x.dtype != w.dtype:
            x = backend.asarray(x, w.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_dim:
            raise ValueError(f"{self!r} expects input of shape (N, {self.input_dim}) or "
                             f"({self.input_dim},), got shape {x.shape}")
        self.input = x
        rows = x.ndim == 2
        output = backend.gemm(x if rows else x.reshape(1, self.input_dim), w, trans_b=True)
        output += self.b
        return output if rows else output.reshape(self.output_dim)

    def backward(self, gradient: Any) -> Array:
        gy = self._store_grads(gradient)
        rows = gy.ndim == 2
        dx = self.backend.gemm(gy if rows else gy.reshape(1, self.output_dim), self.w)
        return dx if rows else dx.reshape(self.input_dim)

    def backward_to_params(self, gradient: Any) -> None:
        self._store_grads(gradient)

    def _store_grads(self, gradient: Any) -> Array:
        """Write dW and db for ``gradient`` into w_grad and b_grad; return it as an array."""
        x = self.input
        if x is None:
            raise self._not_saved()
        backend, gy = self.backend, gradient
        if type(gy) is not backend.array_type or gy.dtype != self.w.dtype:
            gy = backend.asarray(gy, self.w.dtype)
        expected = (len(x), self.output_dim) if x.ndim == 2 else (self.output_dim,)
        if gy.shape != expected:
            raise ValueError(f"{self!r}.backward: gradient shape {gy.shape} does not match "
                             f"output shape {expected}")
        gy2, x2 = ((gy, x) if x.ndim == 2
                   else (gy.reshape(1, self.output_dim), x.reshape(1, self.input_dim)))
        backend.gemm(gy2, x2, out=self.w_grad, trans_a=True)
        gy2.sum(axis=0, out=self.b_grad)
        return gy

    def widths(self) -> tuple[int, int]:
        return self.input_dim, self.output_dim

    def adopt(self, params: Sequence[Array], grads: Sequence[Array]) -> None:
        self.w, self.b = params
        self.w_grad, self.b_grad = grads

    def params(self) -> Sequence[Array]:
        return [self.w, self.b]

    def grads(self) -> Sequence[Array]:
        return [self.w_grad, self.b_grad]

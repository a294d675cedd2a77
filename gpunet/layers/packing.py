"""Gather a network's parameters (and gradients) into one contiguous buffer each.

Each layer's arrays become views into the buffers, so layers compute exactly
as before, while an optimizer can update every parameter with one operation
(one kernel launch on a GPU, a handful of NumPy calls instead of a handful
per parameter on the CPU).
"""
from __future__ import annotations

from typing import Sequence

from ..backend import Array, backend_of
from .layer import Layer


def pack(layers: Sequence[Layer]) -> tuple[Array, Array] | None:
    """Move the parameters and gradients of ``layers`` into two flat buffers and
    return them; None (nothing moved) when there are no parameters, they differ
    in backend or dtype, or a layer with parameters cannot ``adopt`` arrays."""
    params = [p for layer in layers for p in layer.params()]
    if (not params or len({(backend_of(p).name, p.dtype) for p in params}) != 1
            or not all(layer.can_adopt() for layer in layers)):
        return None
    backend = backend_of(params[0])
    total = sum(p.size for p in params)
    flat_params, flat_grads = (backend.empty(total, params[0].dtype) for _ in range(2))
    flat_grads[...] = 0
    offset = 0
    for layer in layers:
        views, grad_views = [], []
        for p in layer.params():
            view = flat_params[offset:offset + p.size].reshape(p.shape)
            view[...] = p
            views.append(view)
            grad_views.append(flat_grads[offset:offset + p.size].reshape(p.shape))
            offset += p.size
        if views:
            layer.adopt(views, grad_views)
    return flat_params, flat_grads

"""A network as a sequence of layers, itself a layer."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..backend import Array
from .layer import Layer
from .packing import pack


class Sequential(Layer):
    """Forward through ``layers`` in order, backward in reverse; the params and
    grads are those of every layer, in layer order.

    On construction the layers' parameters and gradients move into one buffer
    each (see ``packing``), so take references to them (``params()``, ``w``)
    after building the network, not before.
    """

    def __init__(self, layers: Iterable[Layer]) -> None:
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: item {i} is {type(layer).__name__}, not a Layer")
        self._flat = pack(self.layers)
        self._packed_ids = self._array_ids()

    def __repr__(self) -> str:
        return "Sequential([" + ", ".join(map(repr, self.layers)) + "])"

    def forward(self, input: Any) -> Array:
        for layer in self.layers:
            input = layer.forward(input)
        return input

    def backward(self, gradient: Any) -> Array:
        for layer in reversed(self.layers):
            gradient = layer.backward(gradient)
        return gradient

    def backward_to_params(self, gradient: Any) -> None:
        if not self.layers:
            return
        for layer in reversed(self.layers[1:]):
            gradient = layer.backward(gradient)
        self.layers[0].backward_to_params(gradient)

    def params(self) -> Sequence[Array]:
        return [param for layer in self.layers for param in layer.params()]

    def grads(self) -> Sequence[Array]:
        return [grad for layer in self.layers for grad in layer.grads()]

    def adopt(self, params: Sequence[Array], grads: Sequence[Array]) -> None:
        start = 0
        for layer in self.layers:
            end = start + len(layer.params())
            layer.adopt(params[start:end], grads[start:end])
            start = end
        self._flat = None  # the enclosing network's buffers hold them now

    def can_adopt(self) -> bool:
        """Whether every layer can: a nested network whose own layers cannot
        move into shared buffers keeps its arrays, and so does the enclosing one."""
        return all(layer.can_adopt() for layer in self.layers)

    def flat(self) -> tuple[Array, Array] | None:
        """The shared buffers, while every layer still keeps its arrays in them."""
        if self._flat is None:
            return None
        if self._array_ids() != self._packed_ids:
            return None  # a layer or an array was replaced since packing
        return self._flat

    def _array_ids(self) -> list[int]:
        return list(map(id, self.params() + self.grads()))

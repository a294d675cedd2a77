"""A network as a sequence of layers, itself a layer."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..backend import Array
from ..backend.draw_window import DrawWindow
from .dropout import Dropout
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
        _check_each_once(self.layers)
        self._flat = pack(self.layers)
        self._packed_ids = self._array_ids()

    def __repr__(self) -> str:
        return "Sequential([" + ", ".join(map(repr, self.layers)) + "])"

    def forward(self, input: Any, window: DrawWindow | None = None) -> Array:
        """Each layer's forward in turn; ``window`` as ``forward_share`` takes it."""
        if window is None:
            for layer in self.layers:
                input = layer.forward(input)
            return input
        for layer in self.layers:
            input = forward_share(layer, input, window)
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

    @property
    def keeps_width(self) -> bool:  # type: ignore[override]
        return all(layer.keeps_width for layer in self.layers)

    def widths(self) -> tuple[int | None, int | None]:
        """The first width-changing layer's input width and the last one's output width."""
        changing = [layer for layer in self.layers if not layer.keeps_width]
        if not changing:
            return None, None
        return changing[0].widths()[0], changing[-1].widths()[1]

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
        """The ids of every layer's parameters and gradients, asking only the layers
        whose class may have any (one keeping Layer's params and grads has none)."""
        ids: list[int] = []
        for layer in self.layers:
            kind = type(layer)
            if kind.params is not Layer.params or kind.grads is not Layer.grads:
                ids += map(id, layer.params())
                ids += map(id, layer.grads())
        return ids


def forward_share(layer: Layer, input: Any, window: DrawWindow | None) -> Array:
    """``layer.forward(input)``; with ``window`` (the rows are a rank's share of a
    batch), a Dropout's draws, here or within Sequentials, are its rows of the
    whole batch's draw (``Dropout.forward``)."""
    if window is None or not isinstance(layer, (Dropout, Sequential)):
        return layer.forward(input)
    return layer.forward(input, window)


def _check_each_once(layers: Sequence[Layer]) -> None:
    """ValueError naming the layer when one object appears twice among ``layers``
    and the Sequentials within them: it keeps one forward pass (its input, mask
    or output) and one gradient, so the second use would overwrite what the first's
    backward needs and train with a wrong gradient."""
    seen: dict[int, str] = {}

    def visit(layer: Layer, where: str) -> None:
        if id(layer) in seen:
            raise ValueError(f"Sequential: {where} is {layer!r} again, the same object as "
                             f"{seen[id(layer)]}; a layer used twice trains with a wrong "
                             "gradient: make a new layer for each place")
        seen[id(layer)] = where
        for i, child in enumerate(getattr(layer, "layers", ())):
            visit(child, f"{where}.layers[{i}]")

    for i, layer in enumerate(layers):
        visit(layer, f"layers[{i}]")

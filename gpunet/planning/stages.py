"""A network read as dense stages: Linear, then optionally Dropout, then optionally an activation."""
from __future__ import annotations

from dataclasses import dataclass

from ..backend.activations import ActivationCall
from ..layers import Dropout, Layer, Linear, Sequential
from ..layers.activations import ACTIVATION_LAYERS

# exactly these classes: a subclass may compute otherwise
ACTIVATIONS = tuple(ACTIVATION_LAYERS.values())


@dataclass(frozen=True)
class DenseStage:
    """y = activation(dropout(x W^T + b)), each part optional but the product."""
    linear: Linear
    dropout: Dropout | None
    activation: ActivationCall | None  # the activation and its scalars, e.g. ("tanh", ())

    @property
    def dropout_args(self) -> tuple[float, float] | None:
        """(p, scale) for the backend's fused dropout, or None."""
        return None if self.dropout is None else (self.dropout.p, self.dropout.training_scale)


def dense_stages(model: Layer) -> list[DenseStage] | None:
    """``model``'s layers as dense stages whose last is a bare Linear (the
    logits), each Dropout training and the widths chained; None when ``model``
    is not such a Sequential (it then trains eagerly)."""
    if type(model) is not Sequential:
        return None
    layers, stages = list(model.layers), []
    while layers:
        linear = layers.pop(0)
        if type(linear) is not Linear:
            return None
        dropout = layers.pop(0) if layers and type(layers[0]) is Dropout else None
        if dropout is not None and not dropout.train:
            return None
        activation = layers.pop(0).call if layers and type(layers[0]) in ACTIVATIONS else None
        stages.append(DenseStage(linear, dropout, activation))
    if not stages or stages[-1].dropout or stages[-1].activation:
        return None
    if any(a.linear.output_dim != b.linear.input_dim for a, b in zip(stages, stages[1:])):
        return None
    return stages

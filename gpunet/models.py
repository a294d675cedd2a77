"""The MNIST models: the notebook's two, and a wider MLP, each a layer description.

``PRESET_MODELS`` is the one table of them: each preset's layers (as
``gpunet.layers.describe`` writes them) and the rates that train it at
mini-batch sizes; the command line (its run settings, ``cli/run_settings.py``)
and the benchmarks take the names, ``PRESETS``, from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .backend import Backend
from .layers import Layer, build


@dataclass(frozen=True)
class Preset:
    layers: tuple[dict[str, Any], ...]
    mini_batch_rates: tuple[float, float]  # (learning rate, momentum) with a mean loss


def _linear(n_in: int, n_out: int, init: str = "xavier") -> dict[str, Any]:
    return {"layer": "Linear", "input_dim": n_in, "output_dim": n_out, "init": init}


_DROPOUT = {"layer": "Dropout", "p": 0.1, "inverted": False}
PRESET_MODELS = {
    # 784 -> 10 (softmax in the loss): the notebook's logistic regression
    "logistic": Preset((_linear(784, 10),), (0.1, 0.9)),
    # 784 -> 30 -> 10 -> 10 with the notebook's dropout 0.1 and tanh: its deep model
    "deep": Preset((_linear(784, 30), _DROPOUT, {"layer": "Tanh"},
                    _linear(30, 10), _DROPOUT, {"layer": "Tanh"},
                    _linear(10, 10)), (0.5, 0.9)),
    # 784 -> 256 -> 128 -> 10 with relu and textbook Glorot initialisation
    "wide": Preset((_linear(784, 256, "glorot"), {"layer": "Relu"},
                    _linear(256, 128, "glorot"), {"layer": "Relu"},
                    _linear(128, 10, "glorot")), (0.1, 0.9)),
}
PRESETS = tuple(PRESET_MODELS)
NOTEBOOK_RATES = (0.01, 0.99)  # the notebook's momentum optimizer, one sample a step


def default_rates(name: str, batch_size: int) -> tuple[float, float]:
    """(learning rate, momentum) that train preset ``name`` well: the notebook's at
    batch size 1; at mini-batch sizes (mean loss over the batch) larger steps."""
    return NOTEBOOK_RATES if batch_size == 1 else PRESET_MODELS[name].mini_batch_rates


def mnist_model(name: str, *, backend: Backend, dtype: Any = None) -> Layer:
    """Preset ``name`` of ``PRESET_MODELS`` (the notebook's 'logistic' and 'deep', and
    'wide'), freshly initialised: a Sequential of its layers."""
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(PRESETS)}")
    return build({"layer": "Sequential", "layers": list(PRESET_MODELS[name].layers)},
                 backend=backend, dtype=dtype)

"""How close a training step runs to the device's limits.

A step's minimum work: for each Linear layer (in -> out) on a batch of B,
2·B·in·out FLOPs forward, as many for dW and (but in the first layer) for dx;
elementwise layers and the loss are memory-bound. Its minimum traffic reads
every input and writes every output once (float32), plus five passes over the
parameters for the momentum update. The roofline bound is the larger of
FLOPs / peak FLOP/s and bytes / peak bandwidth; the fraction reported is that
bound over the measured time (1.0 would be at the hardware's limit).
"""
from __future__ import annotations

from typing import Any

from ..layers import describe
from ..models import mnist_model
from ..backend import get_backend

ITEM = 4  # float32
# device name fragment -> (bytes/s measured copy bandwidth, FLOP/s fp32)
DEVICE_LIMITS = {"H200": (4.3e12, 67e12)}


def step_cost(model: str, batch_size: int) -> tuple[float, float]:
    """(FLOPs, bytes) of one training step of preset ``model``."""
    layers = describe(mnist_model(model, backend=get_backend("numpy")))["layers"]
    flops = traffic = 0.0
    parameters = 0
    first = True
    for layer in layers:
        if layer["layer"] == "Linear":
            n_in, n_out, b = layer["input_dim"], layer["output_dim"], batch_size
            passes = 2 if first else 3
            flops += passes * 2 * b * n_in * n_out
            traffic += (passes * (b * n_in + n_in * n_out + b * n_out)) * ITEM
            parameters += n_in * n_out + n_out
            first = False
        else:
            width = _width_before(layers, layer)
            traffic += 5 * batch_size * width * ITEM  # forward read+write, backward 3 arrays
    traffic += 3 * batch_size * 10 * ITEM + 5 * parameters * ITEM
    flops += 4 * parameters
    return flops, traffic


def roofline(model: str, batch_size: int, seconds: float, device_name: str | None) -> dict[str, Any] | None:
    """The step's achieved rates and its fraction of the roofline bound on a known device."""
    limits = next((v for k, v in DEVICE_LIMITS.items() if device_name and k in device_name), None)
    if limits is None:
        return None
    bandwidth, peak_flops = limits
    flops, traffic = step_cost(model, batch_size)
    bound = max(flops / peak_flops, traffic / bandwidth)
    return {"flops": flops, "bytes": traffic, "tflops": flops / seconds / 1e12,
            "tb_per_s": traffic / seconds / 1e12, "fraction_of_roofline": bound / seconds,
            "limit": "compute" if flops / peak_flops > traffic / bandwidth else "memory"}


def _width_before(layers: list[dict[str, Any]], layer: dict[str, Any]) -> int:
    """The feature count an elementwise layer works on: the last Linear's output before it."""
    width = 784
    for candidate in layers:
        if candidate is layer:
            return width
        if candidate["layer"] == "Linear":
            width = candidate["output_dim"]
    return width

"""The host replay against the planned step, for each activation.

    python -m benchmarks.replay_activations [--repeats 15] [--batch-sizes 1 128]
                                            [--activations Tanh Sigmoid Relu LeakyRelu]

Trains ``bench_core``'s deep model with each activation layer in place of
``Tanh`` for an epoch with ``train_epoch(graph="off")`` (the planned step) and
``graph="on"`` (on NumPy the host replay, its dense stages C), one BLAS thread,
interleaved as ``bench_core`` times (the process's CPU time), and prints the
min/median/max over the repeats of the replay's speed over the planned step's.
Both give the same numbers (``tests/backend/test_host_replay.py``).
"""
from __future__ import annotations

import argparse
import functools
import time

from threadpoolctl import threadpool_limits

import gpunet

from .bench_core import comparison_options, data, deep_model, interleaved, ratios

ACTIVATIONS = ("Tanh", "Sigmoid", "Relu", "LeakyRelu")


def model_with(activation: str) -> gpunet.Sequential:
    """``bench_core.deep_model`` with each Tanh an ``activation`` layer."""
    layers = [getattr(gpunet, activation)() if isinstance(layer, gpunet.Tanh) else layer
              for layer in deep_model().layers]
    return gpunet.Sequential(layers)


def time_epoch(activation: str, graph: str, x, y, batch_size: int) -> float:
    model = model_with(activation)
    loss, optimizer = gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.01, 0.99)
    start = time.process_time()
    float(gpunet.train_epoch(model, loss, optimizer, x, y, batch_size, graph=graph))
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    comparison_options(parser, repeats=15)
    parser.add_argument("--activations", nargs="+", choices=ACTIVATIONS, default=list(ACTIVATIONS),
                        help="activation layers to compare with (default: all four)")
    args = parser.parse_args()
    print(f"{'activation':<10} {'batch':>5} {'replay / planned min/median/max':>31}")
    with threadpool_limits(1, user_api="blas"):
        for batch in args.batch_sizes:
            x, y = data(args.samples_batch1 if batch == 1 else args.samples)
            for activation in args.activations:
                planned, replayed = interleaved(
                    [functools.partial(time_epoch, activation, graph, x, y, batch)
                     for graph in ("off", "on")], args.repeats)
                print(f"{activation:<10} {batch:>5} {'':>10}{ratios(planned, replayed)}")


if __name__ == "__main__":
    main()

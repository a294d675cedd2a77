"""gpunet's random streams recomputed independently, in plain Python integers,
from README's definition: draw number c of a stream is SplitMix64 of
key + c * 0x9E3779B97F4A7C15, the key derived from the seed (and, in fit, the
epoch number); a permutation sorts the draws, a uniform is the top 24 bits
times 2^-24. Also a layer that records what training feeds it."""
from __future__ import annotations

import numpy as np

import gpunet

M64 = (1 << 64) - 1
GAMMA, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
DEVICE_STREAM = 1  # stream 0 draws the initial parameters, stream 1 the device's numbers


def device_key(seed: int, epoch: int | None = None) -> int:
    """The device stream's key after ``gpunet.seed(seed)`` (and in ``epoch`` of fit)."""
    entropy = [seed, DEVICE_STREAM] if epoch is None else [seed, DEVICE_STREAM, epoch]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def splitmix64(key: int, counter: int) -> int:
    z = (key + counter * GAMMA) & M64
    z = ((z ^ (z >> 30)) * MIX1) & M64
    z = ((z ^ (z >> 27)) * MIX2) & M64
    return z ^ (z >> 31)


def permutation(key: int, n: int, first: int = 0) -> list[int]:
    """The order ``backend.permutation(n)`` draws from counters first .. first + n - 1."""
    bits = [splitmix64(key, first + i) for i in range(n)]
    return sorted(range(n), key=lambda i: (bits[i], i))


def uniform(key: int, first: int, n: int) -> np.ndarray:
    """The uniform draws of counters first .. first + n - 1."""
    return np.array([(splitmix64(key, first + i) >> 40) * 2.0 ** -24 for i in range(n)])


class Recorder(gpunet.Layer):
    """The identity, remembering a copy of every input it is given (as NumPy)."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def forward(self, input):
        self.inputs.append(np.array(gpunet.backend_of(input).to_numpy(input)))
        return input

    def backward(self, gradient):
        return gradient

"""FizzBuzz: learn to classify 101..1023 from their bits, test on 1..100."""
from __future__ import annotations

from dataclasses import dataclass

from .. import seeding
from ..backend import Backend, get_backend
from ..functional import binary_encode, fizz_buzz_encode
from ..layers import Layer, Linear, Sequential, Sigmoid, Tanh
from ..losses import SSE, SoftmaxCrossEntropy
from ..optimizers import Momentum
from ..train.metrics import accuracy
from .loop import train_epochs

NUM_HIDDEN = 25
TRAIN_RANGE = range(101, 1024)
TEST_RANGE = range(1, 101)
# The notebook trains the sigmoid+SSE net for 1000 epochs, the softmax one for 100.
LOSSES = {"softmax-ce": (SoftmaxCrossEntropy, 100), "sse": (SSE, 1000)}


@dataclass
class FizzBuzzResult:
    losses: list[float]            # summed loss of each epoch
    train_accuracies: list[float]  # accuracy on 101..1023 after each epoch
    test_accuracy: float           # accuracy on 1..100 at the end
    model: Layer


def fizzbuzz_net(loss: str, backend: Backend) -> Sequential:
    """10 bits -> 25 tanh -> 4 outputs, uniform init; SSE adds the final sigmoid."""
    layers: list[Layer] = [Linear(10, NUM_HIDDEN, init="uniform", backend=backend), Tanh(),
                           Linear(NUM_HIDDEN, 4, init="uniform", backend=backend)]
    if loss == "sse":
        layers.append(Sigmoid())
    return Sequential(layers)


def run_fizzbuzz(loss: str = "softmax-ce", epochs: int | None = None, batch_size: int = 1,
                 learning_rate: float = 0.1, momentum: float = 0.9, seed: int = 0,
                 backend: str | Backend | None = None, progress: bool = False) -> FizzBuzzResult:
    """Train with the notebook's settings: momentum 0.1/0.9, batch 1, and
    100 epochs of softmax cross-entropy or 1000 of SSE."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")
    loss_class, default_epochs = LOSSES[loss]
    backend = get_backend(backend)
    seeding.seed(seed)
    model = fizzbuzz_net(loss, backend)
    x = binary_encode(TRAIN_RANGE, backend=backend)
    y = fizz_buzz_encode(TRAIN_RANGE, backend=backend)
    losses, train_accuracies = train_epochs(
        model, loss_class(), Momentum(learning_rate, momentum), x, y,
        epochs=default_epochs if epochs is None else epochs, batch_size=batch_size,
        label="fb", progress=progress, score=lambda: accuracy(model, x, y))
    test = accuracy(model, binary_encode(TEST_RANGE, backend=backend),
                    fizz_buzz_encode(TEST_RANGE, backend=backend))
    return FizzBuzzResult(losses, train_accuracies, test, model)

"""The notebook's experiments, trained for real to the notebook's results."""
import numpy as np
import pytest

import gpunet
from gpunet.experiments import run_fizzbuzz, run_xor

XOR_SEEDS = range(6)
FIZZBUZZ_SEEDS = range(5)
FIZZBUZZ_BATCH = 16
FIZZBUZZ_EPOCHS = 1000


def until_decided(outcomes, needed, total):
    """The first of ``total`` lazily computed ``outcomes`` (booleans), up to the one that
    decides whether at least ``needed`` of all ``total`` are true: the runs after it
    cannot change the answer, so they are not trained."""
    seen = []
    for outcome in outcomes:
        seen.append(bool(outcome))
        if sum(seen) >= needed or seen.count(False) > total - needed:
            break
    return seen


def test_until_decided_stops_once_the_answer_is_known():
    assert until_decided(iter([True, True, False, True, True, True]), 4, 6) == [True, True,
                                                                                False, True, True]
    assert until_decided(iter([False, False, False, True]), 2, 4) == [False, False, False]
    assert until_decided(iter([True, False, True, False, True]), 3, 5) == [True, False, True,
                                                                           False, True]


def test_xor_converges_for_most_seeds():
    """More than half of the seeds solve XOR (at least 4 of 6: stops once that is decided)."""
    needed = len(XOR_SEEDS) // 2 + 1
    solved = until_decided((run_xor(seed=seed, backend="numpy").solved for seed in XOR_SEEDS),
                           needed, len(XOR_SEEDS))
    assert sum(solved) >= needed, f"solved for seeds {solved}"


def test_xor_repeats_exactly_with_a_seed():
    a = run_xor(epochs=50, seed=3, backend="numpy")
    b = run_xor(epochs=50, seed=3, backend="numpy")
    assert a.losses == b.losses
    np.testing.assert_array_equal(a.predictions, b.predictions)


def test_xor_in_mini_batches():
    """Measured: the epoch loss falls from 2.15 to 4e-12, every output within 2e-6 of its target."""
    result = run_xor(epochs=3000, batch_size=4, learning_rate=0.4, seed=0, backend="numpy")
    assert len(result.losses) == 3000 and result.losses[0] > 1 and result.losses[-1] < 1e-4
    assert result.solved
    np.testing.assert_allclose(np.ravel(result.predictions), [0, 1, 1, 0], atol=0.01)


@pytest.mark.slow
def test_fizzbuzz_softmax_cross_entropy_reaches_085_median():
    """The notebook's net, loss and optimizer, in mini-batches of 16 (at the
    notebook's batch 1 and 100 epochs the median over seeds 0..7 is 0.82).

    The median of the five seeds' accuracies is at least 0.85 exactly when three of
    them are, so the seeds train only until that is decided (measured: 0.90, 0.94,
    0.87, then 0.95 and 0.87 not needed)."""
    accuracies = []

    def reaches(seed):
        accuracies.append(run_fizzbuzz(seed=seed, epochs=FIZZBUZZ_EPOCHS,
                                       batch_size=FIZZBUZZ_BATCH, backend="numpy").test_accuracy)
        return accuracies[-1] >= 0.85

    needed = len(FIZZBUZZ_SEEDS) // 2 + 1
    reached = until_decided(map(reaches, FIZZBUZZ_SEEDS), needed, len(FIZZBUZZ_SEEDS))
    assert sum(reached) >= needed, f"median of {len(FIZZBUZZ_SEEDS)} below 0.85: {accuracies}"


def test_fizzbuzz_sse_variant_trains():
    """The sigmoid + SSE net starts saturated (uniform [0, 1) weights put every
    output near 1: epoch loss 2769 over 923 samples, accuracy 0.27) and sits on
    plateaus before it learns, at the notebook's batch 1 and lr 0.1 for about 200
    epochs (75 s for the 1000). In batches of 32 at lr 3 it learns in 2 s: measured,
    the loss falls to 67 and the training accuracy passes 0.85 at epoch 362 and
    ends at 0.934 after 600 (test 0.87); predicting the most common class scores 0.534."""
    result = run_fizzbuzz(loss="sse", epochs=600, batch_size=32, learning_rate=3.0, seed=0,
                          backend="numpy")
    assert isinstance(result.model.layers[-1], gpunet.Sigmoid)
    assert len(result.losses) == len(result.train_accuracies) == 600
    assert result.losses[0] > 2500 and result.losses[-1] < result.losses[0] / 10
    assert result.train_accuracies[0] < 0.3 and result.train_accuracies[-1] >= 0.85
    assert result.test_accuracy >= 0.75


def test_unknown_fizzbuzz_loss():
    with pytest.raises(ValueError, match="'hinge'.*softmax-ce, sse"):
        run_fizzbuzz(loss="hinge")


@pytest.mark.parametrize("bad", [-1, 2.5])
def test_bad_epochs(bad):
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        run_xor(epochs=bad)


@pytest.mark.parametrize("bad", [0, -3, 1.0])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        run_xor(epochs=1, batch_size=bad)

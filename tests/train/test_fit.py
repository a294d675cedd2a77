"""fit and evaluate: history, dropout switching, non-finite losses, exact resumption."""
import re
import time

import numpy as np
import pytest

import gpunet
from gpunet.checkpoint import load_checkpoint, save_checkpoint
from gpunet.train import NonFiniteLoss, evaluate, fit
from helpers.arrays import host
from helpers.random_reference import Recorder, device_key, permutation, uniform


def problem(backend, n=64):
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(6, 8, backend=backend), gpunet.Dropout(0.2),
                               gpunet.Tanh(), gpunet.Linear(8, 3, backend=backend)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = gpunet.one_hot_encode((x[:, 0] > 0) + (x[:, 1] > 0), 3, backend=backend)
    return model, x, y


def test_history_and_dropout_switching(backend):
    model, x, y = problem(backend)
    history = fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.2, 0.9), x, y,
                  epochs=4, batch_size=8, test=(x, y), progress=False)
    assert [s.epoch for s in history] == [1, 2, 3, 4]
    assert history[-1].loss < history[0].loss
    assert all(0 <= s.accuracy <= 1 and s.samples_per_second > 0 for s in history)
    assert model.layers[1].train is False
    test_loss, test_accuracy = evaluate(model, gpunet.SoftmaxCrossEntropy(), x, y)
    assert (test_loss, test_accuracy) == pytest.approx((history[-1].test_loss,
                                                        history[-1].test_accuracy))


def sign_problem(backend, seed, n):
    """Three classes: how many of x0, x1 are positive; 6 features, 4 of them noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    return x, gpunet.one_hot_encode((x[:, 0] > 0) + (x[:, 1] > 0), 3, backend=backend)


def test_fit_learns_a_learnable_problem_to_a_held_out_target(backend):
    """256 samples, 20 epochs: the held-out accuracy reaches 0.899 (the majority
    class alone scores about 0.5); evaluate's numbers are those of the model's
    maths recomputed here in float64, dropout scaling the evaluation by 1 - p."""
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(6, 8, backend=backend), gpunet.Dropout(0.2),
                               gpunet.Tanh(), gpunet.Linear(8, 3, backend=backend)])
    x, y = sign_problem(backend, 0, 256)
    test_x, test_y = sign_problem(backend, 1, 1000)
    history = fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.2, 0.9), x, y,
                  epochs=20, batch_size=8, test=(test_x, test_y), progress=False)
    assert history[0].loss > 0.6 and history[-1].loss < 0.3
    assert history[-1].accuracy >= 0.85 and history[-1].test_accuracy >= 0.85
    w1, b1, w2, b2 = (host(backend, p).astype(np.float64) for p in model.params())
    z = np.tanh((test_x @ w1.T + b1) * 0.8) @ w2.T + b2
    labels = host(backend, test_y).argmax(axis=1)
    log_likelihood = z[np.arange(len(z)), labels] - np.log(np.exp(z).sum(axis=1))
    assert history[-1].test_loss == pytest.approx(-log_likelihood.mean(), rel=1e-4)
    assert history[-1].test_accuracy == pytest.approx((z.argmax(axis=1) == labels).mean(), abs=0.002)


def test_epoch_loss_and_accuracy_cover_every_sample(backend):
    """With nothing learning (lr 0, no dropout) an epoch's loss and accuracy are
    the fixed model's over all 50 samples, the short last batch included,
    recomputed here in float64."""
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(6, 3, backend=backend)])
    x, y = sign_problem(backend, 2, 50)
    history = fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.GradientDescent(0.0), x, y,
                  epochs=2, batch_size=16, test=(x[:20], y[:20]), progress=False)
    w, b = (host(backend, p).astype(np.float64) for p in model.params())
    z = x @ w.T + b
    labels = host(backend, y).argmax(axis=1)
    losses = np.log(np.exp(z).sum(axis=1)) - z[np.arange(50), labels]
    hits = z.argmax(axis=1) == labels
    assert 0.2 < hits.mean() < 0.8  # neither all right nor all wrong: the count matters
    for stats in history:
        assert stats.loss == pytest.approx(losses.mean(), rel=1e-5)
        assert stats.accuracy == hits.mean()
        assert stats.test_loss == pytest.approx(losses[:20].mean(), rel=1e-5)
        assert stats.test_accuracy == hits[:20].mean()


@pytest.mark.parametrize("samples", [1, 50])
def test_epoch_loss_and_accuracy_cover_one_sample_as_many(numpy_backend, samples):
    """A one-sample epoch's accuracy is its one hit or miss."""
    gpunet.seed(0)
    model = gpunet.Sequential([gpunet.Linear(6, 3, backend=numpy_backend)])
    x, y = sign_problem(numpy_backend, 2, samples)
    (stats,) = fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.GradientDescent(0.0), x, y,
                   epochs=1, progress=False)
    assert stats.accuracy == gpunet.accuracy(model, x, y)


def test_each_epoch_reports_its_training_time_speed_and_step_path(numpy_backend):
    """The seconds are the epoch's own, within the run's, the speed its samples
    over them, and the path its full batches took."""
    model, x, y = problem(numpy_backend)
    started = time.perf_counter()
    history = fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.2, 0.9), x, y,
                  epochs=2, batch_size=8, progress=False)
    took = time.perf_counter() - started
    assert 0 < sum(stats.seconds for stats in history) <= took
    for stats in history:
        assert stats.samples_per_second == len(x) / stats.seconds
        assert stats.step_path.startswith(("graph", "planned"))  # planned; replayed with a cc
    (eager,) = fit(model, gpunet.SSE(), gpunet.Momentum(0.2, 0.9), x, y, epochs=1,
                   batch_size=8, progress=False)
    assert eager.step_path == "eager"  # SSE does not plan


def test_dropout_is_off_after_fit_without_a_test_set(backend):
    """README: fit leaves dropout off, ready to evaluate, test set or not."""
    model, x, y = problem(backend)
    fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.2, 0.9), x, y, epochs=2,
        batch_size=8, progress=False)
    assert model.layers[1].train is False
    w1, b1, w2, b2 = (host(backend, p).astype(np.float64) for p in model.params())
    expected = np.tanh((x @ w1.T + b1) * 0.8) @ w2.T + b2  # evaluation: scaled by 1 - p, no mask
    for _ in range(2):
        np.testing.assert_allclose(host(backend, model.forward(x)), expected, rtol=1e-5, atol=1e-6)
    gpunet.set_train(model, True)
    fit(model, gpunet.SSE(), gpunet.GradientDescent(0.1), x, y, epochs=2, first_epoch=2,
        progress=False)  # no epoch left to train: still switched off
    assert model.layers[1].train is False


def shuffle_probe(backend, n):
    """A model that records the rows each step gets, then drops half of them
    (Dropout(0.5) on 2 features), and inputs whose first feature is the row's index."""
    recorder = Recorder()
    model = gpunet.Sequential([recorder, gpunet.Dropout(0.5), gpunet.Linear(2, 2, backend=backend)])
    x = np.stack([np.arange(n), np.ones(n)], axis=1).astype(np.float32)
    y = gpunet.one_hot_encode(np.arange(n) % 2, 2, backend=backend)
    return model, recorder, x, y


def test_each_epoch_shuffles_and_drops_from_its_own_stream(backend):
    """Epoch k's order and dropout masks are those of the stream keyed by the
    seed and k (README), recomputed here from SplitMix64: one step per epoch
    takes counters 0..n-1 for the order, then n..3n-1 for the (n, 2) mask."""
    n, seed = 16, 7
    gpunet.seed(seed)
    model, recorder, x, y = shuffle_probe(backend, n)
    masks = []
    fit(model, gpunet.SSE(), gpunet.GradientDescent(0.01), x, y, epochs=3, batch_size=n,
        progress=False, on_epoch_end=lambda stats: masks.append(host(backend, model.layers[1].mask)))
    orders = [seen[:, 0].astype(int).tolist() for seen in recorder.inputs]
    assert len(orders) == 3
    for epoch, (order, mask) in enumerate(zip(orders, masks), start=1):
        key = device_key(seed, epoch)
        assert order == permutation(key, n), f"epoch {epoch}"
        np.testing.assert_array_equal(mask, (uniform(key, n, 2 * n) >= 0.5).reshape(n, 2))
    assert len({tuple(order) for order in orders + [list(range(n))]}) == 4  # all differ
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])


def test_shuffle_false_trains_in_the_stored_order(backend):
    gpunet.seed(7)
    model, recorder, x, y = shuffle_probe(backend, 10)
    fit(model, gpunet.SSE(), gpunet.GradientDescent(0.01), x, y, epochs=2, batch_size=4,
        shuffle=False, progress=False)
    assert [seen[:, 0].astype(int).tolist() for seen in recorder.inputs] == \
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] * 2


@pytest.mark.parametrize("batch_size", [1, 7, 50])
def test_evaluate_takes_every_row_once_in_any_batches(numpy_backend, batch_size):
    model, x, y = problem(numpy_backend, n=50)
    whole = evaluate(model, gpunet.SoftmaxCrossEntropy(), x, y)  # one batch of 1000 rows
    assert evaluate(model, gpunet.SoftmaxCrossEntropy(), x, y, batch_size) == pytest.approx(
        whole, rel=1e-6)


def test_progress_bar_shows_running_loss_and_accuracy(numpy_backend, capsys):
    """Each epoch's bar counts its samples to the whole epoch and ends with the
    epoch's own loss and accuracy."""
    model, x, y = problem(numpy_backend)
    history = fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.2, 0.9), x, y,
                  epochs=2, batch_size=4, refresh=0.0)
    err = capsys.readouterr().err
    for stats in history:
        bar = err[err.index(f"epoch {stats.epoch}/2"):]
        last = bar[:bar.index("\n")].split("\r")[-1]
        assert "100%" in last and "sample/s" in last
        assert re.search(rf"\b{len(x)}(\.0)?/{len(x)}(\.0)? ", last)  # tqdm's unit_scale: 64.0
        assert f"loss: {stats.loss:.3f} acc: {stats.accuracy:.3f}" in last
    assert "epoch 1/2" in err[:err.index("\n")]  # the first bar is left on its line


@pytest.mark.parametrize("progress, refresh", [(False, 0.0), (True, 3600.0)])
def test_the_metrics_are_read_once_an_epoch_without_a_bar_or_its_refresh_due(
        numpy_backend, monkeypatch, progress, refresh):
    """Reading the metrics waits for the device: never per step unless a refresh is due."""
    reads = []
    read = gpunet.train.EpochMetrics.read
    monkeypatch.setattr(gpunet.train.EpochMetrics, "read",
                        lambda self, done: reads.append(done) or read(self, done))
    model, x, y = problem(numpy_backend)
    fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.2, 0.9), x, y, epochs=2,
        batch_size=4, progress=progress, refresh=refresh)
    assert reads == [len(x), len(x)]


def test_non_finite_loss_names_epoch_and_step(backend):
    model, x, y = problem(backend)
    y[37] = 3e38  # finite, but its loss overflows: rows 30..39 are step 4 at batch size 10
    advice = "epoch 1 at step 4; try a smaller learning rate"
    with pytest.raises(NonFiniteLoss, match=advice) as caught:
        fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.1, 0.9), x, y, epochs=2,
            batch_size=10, shuffle=False, progress=False)
    assert (caught.value.epoch, caught.value.step) == (1, 4)


def test_a_resumed_run_equals_an_uninterrupted_one(numpy_backend, tmp_path):
    loss = gpunet.SoftmaxCrossEntropy()
    model, x, y = problem(numpy_backend)
    optimizer = gpunet.Momentum(0.1, 0.9)
    fit(model, loss, optimizer, x, y, epochs=3, batch_size=8, progress=False)

    first, x, y = problem(numpy_backend)
    first_optimizer = gpunet.Momentum(0.1, 0.9)
    fit(first, loss, first_optimizer, x, y, epochs=1, batch_size=8, progress=False)
    save_checkpoint(tmp_path / "run.ckpt", first, first_optimizer, epoch=1, seed=0)
    gpunet.seed(99)  # whatever happens in between
    resumed = load_checkpoint(tmp_path / "run.ckpt", numpy_backend)
    gpunet.seed(resumed.seed)
    fit(resumed.model, loss, resumed.optimizer, x, y, epochs=3, first_epoch=1, batch_size=8,
        progress=False)
    for a, b in zip(model.params(), resumed.model.params()):
        np.testing.assert_array_equal(host(numpy_backend, a), host(numpy_backend, b))


def test_bad_epochs(numpy_backend):
    model, x, y = problem(numpy_backend)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        fit(model, gpunet.SSE(), gpunet.GradientDescent(), x, y, epochs=-1)

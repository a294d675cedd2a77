"""fit and evaluate: history, dropout switching, non-finite losses, exact resumption."""
import numpy as np
import pytest

import gpunet
from gpunet.checkpoint import load_checkpoint, save_checkpoint
from gpunet.fitting import evaluate, fit
from gpunet.metrics import NonFiniteLoss
from conftest import host


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


def test_progress_bar_shows_running_loss_and_accuracy(numpy_backend, capsys):
    model, x, y = problem(numpy_backend)
    fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.2, 0.9), x, y, epochs=1,
        batch_size=4, refresh=0.0)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss:" in err and "acc:" in err


def test_non_finite_loss_names_epoch_and_step(backend):
    model, x, y = problem(backend)
    x[37] = np.nan  # rows 30..39 are step 4 at batch size 10, in order
    with pytest.raises(NonFiniteLoss, match="epoch 1 at step 4") as caught:
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

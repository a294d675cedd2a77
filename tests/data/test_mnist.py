"""The deep model on real MNIST digits: 8,000 test digits to train, the other 2,000 to test."""
import gpunet
from gpunet.data.preprocess import prepare
from gpunet.train import fit
from gpunet.models import mnist_model


def test_deep_model_reaches_090_on_held_out_real_digits(mnist_test_digits, numpy_backend):
    images, labels = mnist_test_digits
    data = prepare(images[:8000], labels[:8000], images[8000:], labels[8000:], numpy_backend)
    gpunet.seed(0)
    model = mnist_model("deep", backend=numpy_backend)
    history = fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(0.2, 0.9), data.train_x,
                  data.train_y, epochs=5, batch_size=32, test=(data.test_x, data.test_y),
                  progress=False)
    assert history[-1].test_accuracy >= 0.90, [s.test_accuracy for s in history]


def test_preprocessing_matches_the_notebook(mnist_test_digits, numpy_backend):
    images, labels = mnist_test_digits
    data = prepare(images[:100], labels[:100], images[100:110], labels[100:110], numpy_backend)
    mean = images[:100].mean()
    assert data.train_x.shape == (100, 784) and data.train_x.dtype == "float32"
    assert abs(float(data.train_x.mean())) < 1e-6
    assert abs(float(data.test_x[3, 200]) - (images[103].ravel()[200] - mean) / 256) < 1e-6
    assert data.train_y.shape == (100, 10) and int(data.train_y[5].argmax()) == labels[5]

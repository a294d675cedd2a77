"""gpunet.load_mnist: an MNIST-format dataset as model-ready float32 arrays on a backend."""
from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet.data import DatasetError, load_mnist
from gpunet.data.sources import FILE_NAMES
from helpers.datasets import put


def notebook_inputs(images, mean):
    """The notebook's preprocessing, pixel by pixel: (pixel - mean) / 256, 784 per image."""
    return np.array([[(float(pixel) - mean) / 256 for pixel in image.ravel()] for image in images])


def test_the_arrays_are_the_notebooks(fake_dir, backend):
    fake, directory = fake_dir
    data = load_mnist("mnist", directory, backend=backend, download=False, progress=False)
    arrays = fake.arrays
    mean = float(np.mean(arrays["train_images"], dtype=np.float64))
    assert data.mean_pixel == pytest.approx(mean, rel=1e-12)
    for x, y, images, labels in [(data.train_x, data.train_y, arrays["train_images"],
                                  arrays["train_labels"]),
                                 (data.test_x, data.test_y, arrays["test_images"],
                                  arrays["test_labels"])]:
        assert gpunet.backend_of(x) is backend and gpunet.backend_of(y) is backend
        x, y = backend.to_numpy(x), backend.to_numpy(y)
        assert x.dtype == y.dtype == np.float32
        assert x.shape == (len(images), 784) and y.shape == (len(images), 10)
        np.testing.assert_allclose(x, notebook_inputs(images, mean), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(y, np.eye(10)[labels])


def test_subsets_keep_the_first_samples_and_their_mean(fake_dir, numpy_backend):
    fake, directory = fake_dir
    data = gpunet.load_mnist("mnist", directory, backend="numpy", download=False, progress=False,
                             train_subset=3, test_subset=2)
    first = fake.arrays["train_images"][:3]
    assert data.mean_pixel == pytest.approx(float(first.mean()), rel=1e-12)
    assert data.train_x.shape == (3, 784) and data.test_x.shape == (2, 784)
    np.testing.assert_allclose(data.train_x, notebook_inputs(first, data.mean_pixel), atol=1e-6)
    np.testing.assert_array_equal(data.test_y.argmax(axis=1), fake.arrays["test_labels"][:2])


def test_the_default_backend_is_gpunets(fake_dir, monkeypatch):
    monkeypatch.setenv("GPUNET_BACKEND", "numpy")
    data = load_mnist("mnist", fake_dir[1], download=False, progress=False)
    assert gpunet.backend_of(data.train_x) is gpunet.get_backend("numpy")


def test_a_missing_dataset_offline_names_the_files_and_the_directory(fake_dir, tmp_path):
    empty = put(tmp_path / "empty", {})
    with pytest.raises(DatasetError) as error:
        load_mnist("mnist", empty, download=False)
    assert str(error.value).startswith(f"mnist: {', '.join(FILE_NAMES.values())} missing from "
                                       f"{empty} and not downloaded (downloading is off)")
    cache = tmp_path / "cache" / "gpunet" / "mnist"
    with pytest.raises(DatasetError) as error:
        load_mnist("mnist", download=False)
    assert str(error.value).startswith(f"mnist not found: it needs "
                                       f"{', '.join(FILE_NAMES.values())} (or the same without "
                                       f".gz); looked in {cache} (no such directory)")


def test_the_result_says_where_it_was_read_and_what_labels_mean(fake_dir, numpy_backend):
    _, directory = fake_dir
    data = load_mnist("mnist", directory, backend=numpy_backend, download=False, progress=False)
    assert data.directory == directory
    assert data.class_names == tuple("0123456789")
    assert gpunet.data.SOURCES["fashion-mnist"].class_names[9] == "Ankle boot"

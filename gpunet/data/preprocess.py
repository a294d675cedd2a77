"""The notebook's preprocessing, vectorised: center, scale, flatten, one-hot; once, on the device."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import Array, Backend
from ..functional import one_hot_encode
from .errors import DatasetError


@dataclass
class Prepared:
    """Model-ready float32 arrays, resident on one backend."""
    train_x: Array   # (N, 784)
    train_y: Array   # (N, 10) one-hot
    test_x: Array
    test_y: Array
    mean_pixel: float


def prepare(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
            test_labels: np.ndarray, backend: Backend) -> Prepared:
    """x = (pixel - mean training pixel) / 256, flattened to 784 values; labels
    one-hot. The mean comes from the training images given, as in the notebook."""
    for images, labels, part in [(train_images, train_labels, "train"),
                                 (test_images, test_labels, "test")]:
        if len(images) != len(labels):
            raise DatasetError(f"{part} set: {len(images)} images but {len(labels)} labels")
    if len(train_images) == 0:
        raise DatasetError("the training set is empty")
    mean = float(train_images.mean(dtype=np.float64))

    def inputs(images: np.ndarray) -> Array:
        flat = images.reshape(len(images), -1).astype(np.float32)
        flat -= np.float32(mean)
        flat /= np.float32(256)
        return backend.asarray(flat)

    return Prepared(inputs(train_images), one_hot_encode(train_labels, backend=backend),
                    inputs(test_images), one_hot_encode(test_labels, backend=backend), mean)

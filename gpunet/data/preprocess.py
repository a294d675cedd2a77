"""The notebook's preprocessing, vectorised: center, scale, flatten, one-hot; once, on the device."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    directory: Path | None = None     # where the files were read, when loaded by name
    class_names: tuple[str, ...] = ()  # what each label stands for, when known


def prepare(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
            test_labels: np.ndarray, backend: Backend) -> Prepared:
    """x = (pixel - mean training pixel) / 256, flattened to 784 values; labels
    one-hot. The mean comes from the training images given, as in the notebook."""
    mean = mean_pixel(train_images)
    return Prepared(*model_ready(train_images, train_labels, mean, backend, "train"),
                    *model_ready(test_images, test_labels, mean, backend, "test"), mean)


def mean_pixel(train_images: np.ndarray) -> float:
    """The mean pixel of the training images, which centres every input."""
    if len(train_images) == 0:
        raise DatasetError("the training set is empty")
    return float(train_images.mean(dtype=np.float64))


def model_ready(images: np.ndarray, labels: np.ndarray, mean: float, backend: Backend,
                part: str = "test") -> tuple[Array, Array]:
    """Inputs x = (pixel - ``mean``) / 256, flattened to 784 values, and one-hot
    targets, of the ``part`` set ``images`` and ``labels``."""
    if len(images) != len(labels):
        raise DatasetError(f"{part} set: {len(images)} images but {len(labels)} labels")
    flat = images.reshape(len(images), -1).astype(np.float32)
    flat -= np.float32(mean)
    flat /= np.float32(256)
    return backend.asarray(flat), one_hot_encode(labels, backend=backend)
